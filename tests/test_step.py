"""The seeds' rules: in the D step only D learns, in the G step only G learns."""

import pytest
import torch

from ganforge.losses import get_loss
from ganforge.models import build
from ganforge.train.step import STATS, GANStep


def make(loss="nonsaturating", model="mlp", shape=(2,), seed=0):
    torch.manual_seed(seed)
    G, D = build(model, shape, latent_dim=4, width=16)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-2)
    return GANStep(G, D, opt_g, opt_d, get_loss(loss), latent_dim=4), torch.randn(32, *shape)


def params(m):
    return [p.detach().clone() for p in m.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "wgan", "wgan-gp", "hinge", "lsgan", "ragan"])
def test_d_phase_changes_only_d(loss):
    step, real = make(loss)
    g0, d0 = params(step.G), params(step.D)
    step.d_phase(real)
    assert same(g0, params(step.G)), "G's parameters changed in the D step"
    assert all(p.grad is None for p in step.G.parameters()), "G received a gradient in the D step"
    assert not same(d0, params(step.D)), "D did not learn in the D step"


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "wgan", "wgan-gp", "hinge", "lsgan", "ragan"])
def test_g_phase_changes_only_g(loss):
    step, real = make(loss)
    g0, d0 = params(step.G), params(step.D)
    step.g_phase(real)
    assert same(d0, params(step.D)), "D's parameters changed in the G step"
    assert all(p.grad is None for p in step.D.parameters()), "D received a gradient in the G step"
    assert not same(g0, params(step.G)), "G did not learn in the G step"
    assert all(p.requires_grad for p in step.D.parameters()), "D stayed frozen after the G step"


def test_freezing_holds_for_dcgan_with_batchnorm():
    step, real = make("nonsaturating", "dcgan", (1, 8, 8))
    g0 = params(step.G)
    step.d_phase(real)
    assert same(g0, params(step.G))
    d0 = params(step.D)
    step.g_phase(real)
    assert same(d0, params(step.D))


def test_d_loss_falls_on_a_fixed_batch():
    step, real = make("nonsaturating")
    torch.manual_seed(1)
    first = step.d_phase(real)[0].item()
    for _ in range(30):
        last = step.d_phase(real)[0].item()
    assert last < first * 0.7


def test_k_d_steps_per_g_step():
    step, real = make()
    counts = {"d": 0, "g": 0}
    for name, opt in (("d", step.opt_d), ("g", step.opt_g)):
        opt.register_step_post_hook(lambda *_, n=name: counts.__setitem__(n, counts[n] + 1))
    step.g_steps = 2
    for _ in range(3):
        stats = step([real, real.flip(0), real * 0.5])  # three real batches: k = 3
    assert counts == {"d": 9, "g": 6}
    assert stats.shape == (len(STATS),) and torch.isfinite(stats).all()
