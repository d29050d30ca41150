"""Each stabiliser does what it claims: EMA of G, spectral norm, R1, TTUR, learning-rate decay, DiffAugment."""

import copy

import pytest
import torch
from torch import nn

from conftest import tiny_config
from ganforge import ConfigError, Trainer, load_run
from ganforge.augment import Augmented, DiffAugment
from ganforge.checkpoint import load_checkpoint
from ganforge.losses import R1, get_loss
from ganforge.models import build
from ganforge.train.callbacks import Callback
from ganforge.train.ema import EMA
from ganforge.train.step import GANStep


# ---------------------------------------------------------------- EMA of G
def test_ema_update_is_the_warmed_up_average():
    G = nn.Linear(3, 2)
    ema = EMA(G, decay=0.999)
    start = copy.deepcopy(G.state_dict())
    with torch.no_grad():
        G.weight.add_(1.0)
    ema.update(G)  # first update: decay min(0.999, 1/10) = 0.1
    assert torch.allclose(ema.module.weight, 0.1 * start["weight"] + 0.9 * G.weight)
    for _ in range(9000):  # (1 + t) / (10 + t) passes 0.999 at t = 8991
        ema.update(G)
    assert ema.current_decay() == 0.999
    assert torch.allclose(ema.module.weight, G.weight, atol=1e-5)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_averages_out_noise_in_the_weights():
    """Weights that jitter around a point: the average lands much nearer the point than the last iterate."""
    torch.manual_seed(0)
    target = torch.randn(50)
    G = nn.Linear(50, 1, bias=False)
    ema = EMA(G, decay=0.99)
    for _ in range(2000):
        with torch.no_grad():
            G.weight.copy_(target + 0.5 * torch.randn(50))
        ema.update(G)
    assert (ema.module.weight[0] - target).norm() < 0.2 * (G.weight[0] - target).norm()


def test_ema_measures_batchnorm_statistics_of_its_own_weights():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    ema = EMA(G, decay=0.999)  # holds G's first weights
    with torch.no_grad():
        G[0].weight.mul_(3)
        G[0].bias.add_(2)
    for _ in range(30):
        G(torch.randn(64, 4))  # G's running statistics follow G's new weights
    for avg, live in zip(ema.module.buffers(), G.buffers()):
        avg.copy_(live)  # what update() does with buffers
    ema.measure_batchnorm(latent_dim=4, batch=256, device=torch.device("cpu"), seed=0)
    w, b, bn = ema.module[0].weight, ema.module[0].bias, ema.module[1]
    # for z ~ N(0, I), unit i of Wz + b has mean b_i and variance |W_i|^2
    assert torch.allclose(bn.running_mean, b, atol=0.1)
    assert torch.allclose(bn.running_var, (w ** 2).sum(1), rtol=0.15)
    assert not torch.allclose(bn.running_mean, G[1].running_mean, atol=1.0)  # not G's statistics any more
    assert bn.momentum == 0.1 and not ema.module.training and not G[1].running_mean.equal(bn.running_mean)
    measured = bn.running_mean.clone()
    ema.measure_batchnorm(latent_dim=4, batch=256, device=torch.device("cpu"), seed=1)
    assert torch.equal(bn.running_mean, measured)  # no update since: measured once


def test_sampling_uses_ema_and_resume_restores_it(tmp_path):
    full = Trainer(tiny_config(tmp_path / "full", steps=6, ema=0.9)).fit()
    assert full.G_ema is not None
    assert not torch.equal(full.sample(8), full.sample(8, ema=False))
    bn, bn_ema = full.G.net[1], full.G_ema.net[1]  # the first BatchNorm: statistics of the average's own weights
    assert isinstance(bn_ema, nn.BatchNorm2d) and not torch.allclose(bn.running_mean, bn_ema.running_mean)
    tensors, meta = load_checkpoint(full.dir / "checkpoints")
    assert meta["ema_updates"] == 6 and any(k.startswith("G_ema.") for k in tensors)
    # what `ganforge sample` / `eval` load samples from the EMA generator too
    assert torch.equal(load_run(full.dir).sample(8), full.sample(8))
    Trainer(tiny_config(tmp_path / "part", steps=3, ema=0.9)).fit()
    resumed = Trainer(tiny_config(tmp_path / "part", steps=6, ema=0.9), resume=True).fit()
    for name, value in full.G_ema.state_dict().items():
        assert torch.equal(value, resumed.G_ema.state_dict()[name]), name


def test_ema_off_samples_from_g(tmp_path):
    run = Trainer(tiny_config(tmp_path, ema=0)).fit()
    assert run.G_ema is None and torch.equal(run.sample(4), run.sample(4, ema=False))
    assert not any(k.startswith("G_ema.") for k in load_checkpoint(run.dir / "checkpoints")[0])


@pytest.mark.parametrize("value", [1.0, -0.1, "x"])
def test_bad_ema_is_a_config_error(tmp_path, value):
    with pytest.raises(ConfigError, match="--ema"):
        tiny_config(tmp_path, ema=value).validate()


# ---------------------------------------------------------------- spectral normalisation
@pytest.mark.parametrize("model,shape,d_hidden", [("mlp", (2,), 0), ("dcgan", (1, 16, 16), 0), ("dcgan", (1, 16, 16), 16)])
def test_spectral_norm_makes_d_ignore_weight_scale(model, shape, d_hidden):
    """Each layer (the hidden head's too) is divided by its largest singular value: scaling the raw weights
    changes nothing."""
    torch.manual_seed(0)
    _, D = build(model, shape, latent_dim=4, width=8, d_norm="spectral", d_hidden=d_hidden)
    _, plain = build(model, shape, latent_dim=4, width=8, d_norm="none", d_hidden=d_hidden)
    assert any("parametrizations" in name for name, _ in D.named_parameters())
    x = torch.randn(5, *shape)
    for _ in range(30):  # power iterations converge while D runs in training mode
        D(x)
    D.eval()
    before, plain_before = D(x), plain(x)
    with torch.no_grad():
        for name, p in D.named_parameters():
            if name.endswith("original"):
                p.mul_(100)
        for p in plain.parameters():
            p.mul_(100)
    assert torch.allclose(D(x), before, rtol=1e-3, atol=1e-5)
    assert not torch.allclose(plain(x), plain_before, rtol=0.5)


def test_spectral_norm_bounds_d_gradient():
    torch.manual_seed(0)
    _, D = build("mlp", (2,), latent_dim=4, width=32, d_norm="spectral")
    with torch.no_grad():
        for p in D.parameters():
            p.mul_(10)
    x = torch.randn(64, 2)
    for _ in range(50):
        D(x)
    D.eval()
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    assert grad.norm(dim=1).max() <= 1.01  # a composition of 1-Lipschitz maps


# ---------------------------------------------------------------- R1
class Linear2(nn.Module):
    def forward(self, x):
        return x @ torch.tensor([3.0, 4.0])  # gradient (3, 4) everywhere, squared norm 25


def test_r1_value_and_laziness():
    r1 = R1(gamma=2.0, every=4)
    values = [r1(Linear2(), torch.randn(8, 2)) for _ in range(9)]
    due = [v is not None for v in values]
    assert due == [True, False, False, False, True, False, False, False, True]
    assert values[0].item() == pytest.approx(2.0 / 2 * 25 * 4)  # gamma/2 * |grad|^2, times `every`


def test_r1_is_added_to_any_loss_penalty():
    loss = get_loss("wgan-gp", r1=2.0, r1_every=1)
    gp_only = get_loss("wgan-gp").penalty(Linear2(), torch.randn(8, 2), torch.randn(8, 2))
    both = loss.penalty(Linear2(), torch.randn(8, 2), torch.randn(8, 2))
    assert (both - gp_only).item() == pytest.approx(25.0)
    assert get_loss("hinge").penalty(Linear2(), torch.randn(8, 2), torch.randn(8, 2)) is None


def test_r1_flattens_d_on_real_data():
    """Trained on the same batches, D with R1 has a much smaller gradient at the real points."""
    real = torch.randn(128, 2) * 0.1 + 1.0
    fake = torch.randn(128, 2)

    def grad_norm_after_training(r1):
        torch.manual_seed(0)
        _, D = build("mlp", (2,), latent_dim=4, width=32)
        loss, opt = get_loss("nonsaturating", r1=r1), torch.optim.Adam(D.parameters(), lr=1e-2)
        for _ in range(100):
            total = loss.d_loss(D(real), D(fake))
            penalty = loss.penalty(D, real, fake)
            total = total + penalty if penalty is not None else total
            opt.zero_grad()
            total.backward()
            opt.step()
        x = real.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x)
        return grad.norm(dim=1).mean().item()

    assert grad_norm_after_training(10.0) < 0.3 * grad_norm_after_training(0.0)


def test_r1_rhythm_survives_resume(tmp_path):
    Trainer(tiny_config(tmp_path / "part", steps=3, r1=1.0, r1_every=2)).fit()
    resumed = Trainer(tiny_config(tmp_path / "part", steps=6, r1=1.0, r1_every=2), resume=True)
    resumed.fit()
    assert resumed.loss.regularizers[0].calls == 6


# ---------------------------------------------------------------- TTUR
def test_separate_learning_rates(tmp_path):
    t = Trainer(tiny_config(tmp_path, lr=1e-4, lr_d=4e-4, steps=1))
    t.fit()
    assert t.opt_g.param_groups[0]["lr"] == 1e-4 and t.opt_d.param_groups[0]["lr"] == 4e-4


def test_ttur_is_documented_in_help():
    import argparse

    from ganforge.cli.options import add_config_flags

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    text = parser.format_help()
    assert "--lr-d" in text and "TTUR" in text


# ---------------------------------------------------------------- learning-rate decay
def test_lr_factor_is_flat_then_linear_to_near_zero():
    from ganforge.train.schedule import lr_factor

    assert [lr_factor(s, 10, 0.5) for s in range(10)] == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert [lr_factor(s, 4, 1.0) for s in range(4)] == pytest.approx([1, 0.75, 0.5, 0.25])
    assert all(lr_factor(s, 10, 0.0) == 1.0 for s in range(10))


def test_lr_decay_lowers_both_rates_and_off_leaves_them(tmp_path):
    t = Trainer(tiny_config(tmp_path / "on", lr=1e-3, lr_d=2e-3, steps=8, lr_decay=0.5))
    t.fit()  # the last update ran at 1/4 of the rates
    assert t.opt_g.param_groups[0]["lr"] == pytest.approx(2.5e-4) and t.opt_d.param_groups[0]["lr"] == pytest.approx(5e-4)
    off = Trainer(tiny_config(tmp_path / "off", lr=1e-3, steps=8))
    off.fit()
    assert off.config.lr_decay == 0.0 and off.opt_g.param_groups[0]["lr"] == 1e-3


class _StopAfter(Callback):
    """Interrupts training just after `step` (whose checkpoint is written), like a kill."""

    def __init__(self, step):
        self.step = step

    def on_step(self, trainer):
        if trainer.step > self.step:
            raise KeyboardInterrupt


def test_lr_decay_resume_matches_uninterrupted(tmp_path):
    kw = dict(steps=8, checkpoint_every=4, lr_decay=0.75, ema=0)
    full = Trainer(tiny_config(tmp_path / "full", **kw)).fit()
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(tmp_path / "part", **kw), callbacks=[_StopAfter(4)]).fit()
    resumed = Trainer(tiny_config(tmp_path / "part", **kw), resume=True).fit()
    for name, value in full.G.state_dict().items():
        assert torch.equal(value, resumed.G.state_dict()[name]), name


def test_bad_lr_decay_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--lr-decay"):
        Trainer(tiny_config(tmp_path, lr_decay=1.5)).fit()


# ---------------------------------------------------------------- DiffAugment
def test_translation_is_an_integer_shift_with_zero_padding():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16) + 1
    out = DiffAugment("translation", seed=1)(x)
    for i in range(2):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = nn.functional.pad(x[i], [2, 2, 2, 2])
                shifted = padded[:, 2 + dy:18 + dy, 2 + dx:18 + dx]
                matches.append(torch.equal(out[i], shifted))
        assert sum(matches) == 1, "each image is its original shifted by at most 2 pixels"


def test_cutout_zeroes_one_half_size_square():
    x = torch.ones(64, 1, 8, 8)
    out = DiffAugment("cutout", seed=0)(x)
    zeros = (out == 0).flatten(1).sum(1)
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the border
    assert ((out == 0) | (out == 1)).all()


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "translation,cutout,color"])
def test_augment_is_differentiable_and_reproducible(policy):
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    a, b = DiffAugment(policy, seed=3), DiffAugment(policy, seed=3)
    state = a.state_dict()
    out = a(x)
    assert not torch.equal(out, x)
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    assert grad.abs().sum() > 0
    assert torch.equal(out, b(x))
    a.load_state_dict(state)  # rewinding the augmenter's RNG replays the same transformations
    assert torch.equal(a(x), out)


def test_d_sees_augmented_real_and_fake_in_both_phases():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = build("dcgan", (1, 8, 8), latent_dim=4, width=4)[1]

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.inner(x)

    torch.manual_seed(0)
    G, _ = build("dcgan", (1, 8, 8), latent_dim=4, width=4)
    D = Spy()
    step = GANStep(G, Augmented(D, DiffAugment("cutout", seed=0)), torch.optim.Adam(G.parameters()),
                   torch.optim.Adam(D.parameters()), get_loss("ragan"), latent_dim=4)
    real = torch.rand(16, 1, 8, 8) + 0.5  # no zeros, so cutout's squares show
    g0 = [p.clone() for p in G.parameters()]
    step.d_phase(real)
    step.g_phase(real)
    # D phase: real, fake; G phase: fake, real (ragan scores real data in the G step too)
    assert len(seen) == 4 and all((x == 0).flatten(1).sum(1).min() >= 4 for x in seen)
    assert not all(torch.equal(a, b) for a, b in zip(g0, G.parameters())), "G learned through the augmentation"


def test_augment_resume_matches_uninterrupted(tmp_path):
    kw = dict(augment="translation,cutout,color", ema=0)
    full = Trainer(tiny_config(tmp_path / "full", steps=6, **kw)).fit()
    Trainer(tiny_config(tmp_path / "part", steps=3, **kw)).fit()
    resumed = Trainer(tiny_config(tmp_path / "part", steps=6, **kw), resume=True).fit()
    for name, value in full.G.state_dict().items():
        assert torch.equal(value, resumed.G.state_dict()[name]), name


def test_augment_rejects_points_and_unknown_policies(tmp_path):
    with pytest.raises(ConfigError, match="drop --augment"):
        Trainer(tiny_config(tmp_path, data="grid25", model=None, resolution=None, augment="color")).fit()
    with pytest.raises(ConfigError, match="translation, cutout"):
        tiny_config(tmp_path, augment="flip").validate()


# ---------------------------------------------------------------- mode seeking (G)
def test_mode_seeking_term_is_weight_over_the_image_to_noise_distance_ratio():
    from ganforge.losses import ModeSeeking

    z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]])  # pairs (0, 2) and (1, 3): |dz| 1 and 1
    fake = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 1.0], [0.0, 0.5]])  # |dx| 2 and 0.25
    assert ModeSeeking(0.5)(z, fake).item() == pytest.approx(0.5 / ((2 / 1 + 0.25 / 1) / 2 + 1e-5))
    assert ModeSeeking.pair_labels(torch.tensor([3, 1, 4, 1, 5])).tolist() == [3, 1, 3, 1, 5]


def test_mode_seeking_spreads_a_generator_that_maps_all_noise_together():
    """Minimising the term alone makes G's images of different noise vectors differ more."""
    from ganforge.losses import ModeSeeking

    torch.manual_seed(0)
    G = nn.Linear(4, 8)
    with torch.no_grad():
        G.weight.mul_(0.01)  # nearly one image for every z
    opt = torch.optim.SGD(G.parameters(), lr=1e-4)
    term, z = ModeSeeking(1.0), torch.randn(64, 4)
    spread = G(z).std(0).mean().item()
    for _ in range(20):
        opt.zero_grad()
        term(z, G(z)).backward()
        opt.step()
    assert G(z).std(0).mean().item() > 2 * spread


def test_mode_seeking_pairs_classes_and_changes_only_g_updates():
    """With the term on, the G phase asks each pair of fakes for one class, and G's update changes; the
    D phase is untouched."""
    def make(weight, num_classes):
        torch.manual_seed(0)
        G, D = build("mlp", (2,), latent_dim=4, width=16, num_classes=num_classes)
        return GANStep(G, D, torch.optim.Adam(G.parameters(), lr=1e-2), torch.optim.Adam(D.parameters(), lr=1e-2),
                       get_loss("nonsaturating", mode_seeking=weight), latent_dim=4)

    real, labels = torch.randn(16, 2), torch.arange(16) % 5
    conditional, asked = make(1.0, 5), []
    conditional.G.register_forward_hook(lambda m, args, out: asked.append(args[1].clone()))
    conditional.g_phase(real, labels)
    assert asked[0][:8].tolist() == asked[0][8:].tolist() == labels[:8].tolist()

    plain, seeking = make(0.0, 0), make(1.0, 0)
    for step in (plain, seeking):
        torch.manual_seed(1)
        step.d_phase(real)
    assert all(torch.equal(p, q) for p, q in zip(plain.D.parameters(), seeking.D.parameters()))
    for step in (plain, seeking):
        torch.manual_seed(2)
        step.g_phase(real)
    assert not all(torch.equal(p, q) for p, q in zip(plain.G.parameters(), seeking.G.parameters()))


def test_mode_seeking_weight_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="--mode-seeking must be a number >= 0"):
        tiny_config(tmp_path, mode_seeking=-1.0).validate()
    assert tiny_config(tmp_path).resolve(100, (1, 8, 8)).mode_seeking == 0.0
