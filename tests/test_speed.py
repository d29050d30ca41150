"""The fast path (train/speed.py): wrappers that change how fast a step runs, never what it computes."""

import pytest
import torch

from ganforge.losses import get_loss
from ganforge.models import build
from ganforge.train import speed
from ganforge.train.step import GANStep


def make_step(seed=0, fused=False, shape=(1, 8, 8)):
    torch.manual_seed(seed)
    G, D = build("dcgan", shape, latent_dim=8, width=8)
    kw = {"fused": True} if fused else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999), **kw)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999), **kw)
    return GANStep(G, D, opt_g, opt_d, get_loss("nonsaturating"), latent_dim=8)


def test_auto_precision_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)
    assert speed.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: False)
    assert speed.resolve_precision("auto", cpu) == "fp32"
    for name in ("fp32", "bf16", "fp16"):
        assert speed.resolve_precision(name, cpu) == name


def test_auto_precision_keeps_2d_points_in_fp32(monkeypatch, tmp_path):
    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)
    assert speed.resolve_precision("auto", torch.device("cpu"), images=False) == "fp32"
    assert speed.resolve_precision("bf16", torch.device("cpu"), images=False) == "bf16"  # asked for: given
    from ganforge import Trainer
    from conftest import tiny_config
    points = Trainer(tiny_config(tmp_path / "p", data="grid25", model="mlp", resolution=None, steps=1)).fit()
    images = Trainer(tiny_config(tmp_path / "i", steps=1)).fit()
    assert points.config.precision == "fp32" and images.config.precision == "bf16"


def test_channels_last_only_for_conv_models():
    G, D = build("dcgan", (1, 8, 8), latent_dim=8, width=8)
    assert speed.to_channels_last(G, D)
    conv = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)][1]  # the first has 1 input channel
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    G, D = build("mlp", (2,), latent_dim=8, width=8)
    assert not speed.to_channels_last(G, D)


def test_channels_last_step_computes_the_same_as_the_plain_step():
    plain, fast = make_step(), make_step()
    speed.to_channels_last(fast.G, fast.D)
    fast_step = speed.FastStep(fast, device=torch.device("cpu"), channels_last=True)
    real = torch.rand(16, 1, 8, 8) * 2 - 1
    for _ in range(3):
        torch.manual_seed(1)
        a = plain([real])
        torch.manual_seed(1)
        b = fast_step([real])
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for p, q in zip(plain.G.parameters(), fast.G.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_bf16_step_runs_under_autocast_and_learns():
    step = make_step()
    fast = speed.FastStep(step, device=torch.device("cpu"), precision="bf16")
    seen = []
    step.D.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    g0 = [p.detach().clone() for p in step.G.parameters()]
    stats = fast([torch.rand(16, 1, 8, 8) * 2 - 1])
    assert torch.bfloat16 in seen
    assert stats.dtype == torch.float32 and torch.isfinite(stats).all()
    assert all(p.dtype == torch.float32 for p in step.G.parameters())  # master weights stay fp32
    assert not all(torch.equal(a, b) for a, b in zip(g0, step.G.parameters()))


def test_loaded_optimizer_state_gets_the_parameter_layout():
    """Fused Adam with contiguous state on channels_last parameters silently computes wrong updates."""
    def run(reload):
        torch.manual_seed(0)
        p = torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last).requires_grad_()
        opt = torch.optim.Adam([p], fused=True)
        for i in range(4):
            if i == 1 and reload:
                sd = opt.state_dict()
                sd["state"][0] = {k: v.contiguous() for k, v in sd["state"][0].items()}
                opt.load_state_dict(sd)
                speed.match_parameter_layout(opt)
            p.grad = torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last)
            opt.step()
        return p.detach()

    assert torch.equal(run(reload=False), run(reload=True))


def test_scaled_update_steps_and_skips_overflowing_steps():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    speed.scaled_update(scaler, (p * 2).sum(), opt)
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.8))  # unscaled gradient 2, lr 0.1
    scale = scaler.get_scale()
    speed.scaled_update(scaler, (p * float("inf")).sum(), opt)
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.8))  # skipped
    assert scaler.get_scale() < scale


def test_trainer_records_the_precision_auto_chose(tmp_path, monkeypatch):
    from conftest import tiny_config
    from ganforge import TrainConfig, Trainer

    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)
    run = Trainer(tiny_config(tmp_path, precision="auto", steps=2, device="cpu")).fit()
    saved = TrainConfig.from_yaml(run.dir / "config.yaml")
    assert saved.precision == "bf16"


def test_bf16_resume_continues_exactly(tmp_path):
    from conftest import tiny_config
    from ganforge import Trainer

    full = Trainer(tiny_config(tmp_path / "full", precision="bf16")).fit()
    Trainer(tiny_config(tmp_path / "part", precision="bf16", steps=3)).fit()
    resumed = Trainer(tiny_config(tmp_path / "part", precision="bf16", steps=6), resume=True).fit()
    assert torch.equal(full.sample(8), resumed.sample(8))


@pytest.mark.parametrize("loss, r1", [("wgan-gp", 0.0), ("nonsaturating", 1.0)])
def test_compile_trains_with_a_gradient_penalty(tmp_path, loss, r1):
    """A penalty on D's gradient needs a double backward, which torch.compile refuses: D stays eager."""
    from conftest import tiny_config
    from ganforge import Trainer

    run = Trainer(tiny_config(tmp_path, steps=1, compile=True, loss=loss, r1=r1)).fit()
    assert torch.isfinite(run.sample(2).float()).all()
