"""Each loss against values computed by hand from its published formula."""

import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.losses import LOSSES, get_loss

R = torch.tensor([2.0, -1.0, 0.5])   # D's outputs on real data
Fk = torch.tensor([-3.0, 0.25, 1.5])  # D's outputs on fakes


def sig(t):
    return 1 / (1 + math.exp(-t))


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs)


r, f = R.tolist(), Fk.tolist()
EXPECTED = {
    # name: (D loss, G loss)
    "minimax": (mean(-math.log(sig(x)) for x in r) + mean(-math.log(1 - sig(x)) for x in f),
                mean(math.log(1 - sig(x)) for x in f)),
    "nonsaturating": (mean(-math.log(sig(x)) for x in r) + mean(-math.log(1 - sig(x)) for x in f),
                      mean(-math.log(sig(x)) for x in f)),
    "wgan": (mean(f) - mean(r), -mean(f)),
    "wgan-gp": (mean(f) - mean(r), -mean(f)),
    "hinge": (mean(max(0, 1 - x) for x in r) + mean(max(0, 1 + x) for x in f), -mean(f)),
    "lsgan": (0.5 * mean((x - 1) ** 2 for x in r) + 0.5 * mean(x ** 2 for x in f), 0.5 * mean((x - 1) ** 2 for x in f)),
    "ragan": (mean(-math.log(sig(x - mean(f))) for x in r) + mean(-math.log(1 - sig(x - mean(r))) for x in f),
              mean(-math.log(1 - sig(x - mean(f))) for x in r) + mean(-math.log(sig(x - mean(r))) for x in f)),
}


def test_every_loss_has_a_hand_computed_value():
    assert set(EXPECTED) == set(LOSSES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_matches_formula(name):
    loss = get_loss(name)
    d_expected, g_expected = EXPECTED[name]
    assert loss.d_loss(R, Fk).item() == pytest.approx(d_expected, rel=1e-5)
    assert loss.g_loss(Fk, R).item() == pytest.approx(g_expected, rel=1e-5)


def test_losses_are_distinct():
    """A loss silently replaced by another (a bug once shipped in a public GAN collection) shows up here."""
    values = {n: (round(get_loss(n).d_loss(R, Fk).item(), 6), round(get_loss(n).g_loss(Fk, R).item(), 6)) for n in LOSSES}
    distinct = {n: v for n, v in values.items() if n != "wgan-gp"}  # wgan-gp differs from wgan by its penalty only
    assert len(set(distinct.values())) == len(distinct)


def test_relativistic_g_loss_depends_on_real_scores():
    loss = get_loss("ragan")
    assert loss.g_loss(Fk, R).item() != pytest.approx(loss.g_loss(Fk, R + 3).item())
    assert loss.uses_real_in_g


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_losses_finite_at_extreme_logits(name):
    loss = get_loss(name)
    big = torch.tensor([1e4, -1e4, 80.0, -80.0])
    for a, b in ((big, -big), (-big, big)):
        assert torch.isfinite(loss.d_loss(a, b)) and torch.isfinite(loss.g_loss(b, a))


def test_gradient_penalty_is_zero_for_unit_gradient_critic():
    class Linear(torch.nn.Module):  # D(x) = <w, x> with ||w|| = 1: gradient norm 1 everywhere
        def forward(self, x):
            return x.flatten(1) @ torch.tensor([0.6, 0.8])

    gp = get_loss("wgan-gp").penalty(Linear(), torch.randn(8, 2), torch.randn(8, 2))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)

    class Steep(torch.nn.Module):  # gradient norm 3: penalty 10 * (3 - 1)^2 = 40
        def forward(self, x):
            return x.flatten(1) @ torch.tensor([0.0, 3.0])

    assert get_loss("wgan-gp").penalty(Steep(), torch.randn(8, 2), torch.randn(8, 2)).item() == pytest.approx(40.0)


def test_weight_clipping_bounds_d():
    D = torch.nn.Linear(4, 1)
    torch.nn.init.constant_(D.weight, 0.5)
    get_loss("wgan").after_d_step(D)
    assert D.weight.abs().max().item() == pytest.approx(0.01)


def test_accuracy_reads_d_correctly():
    loss = get_loss("nonsaturating")
    assert loss.accuracy(torch.tensor([1.0, 2.0]), torch.tensor([-1.0, -2.0])).item() == 1.0
    assert loss.accuracy(torch.tensor([-1.0, 2.0]), torch.tensor([-1.0, 2.0])).item() == 0.5
    critic = get_loss("wgan")  # no absolute threshold: halfway between the means
    assert critic.accuracy(torch.tensor([10.0, 11.0]), torch.tensor([8.0, 9.0])).item() == 1.0


def test_unknown_loss_lists_valid_ones():
    with pytest.raises(ConfigError, match="nonsaturating"):
        get_loss("vanilla")


def test_relativistic_readout_and_accuracy_ignore_the_level_of_d():
    # RaGAN's loss sees only differences, so D's outputs drift; a fixed threshold would read nonsense
    loss = get_loss("ragan")
    r, f = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.0])
    for shift in (0.0, 100.0, -100.0):
        assert loss.accuracy(r + shift, f + shift).item() == 1.0
        d_real, d_fake = loss.readout(r + shift, f + shift)
        assert torch.allclose(d_real, torch.sigmoid(torch.tensor([1.5, 2.5])))  # r - mean(f)
        assert torch.allclose(d_fake, torch.sigmoid(torch.tensor([-2.5, -1.5])))  # f - mean(r)
    assert loss.accuracy(r, r).item() == 0.5  # identical outputs: D cannot tell
    assert get_loss("nonsaturating").accuracy(r + 100, f + 100).item() == 0.5  # the absolute reading fails here
