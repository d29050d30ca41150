"""Dropping the samples G stretches most (`Run.sample(drop_stretched=...)`, `ganforge sample/eval --drop-stretched`)."""

import pytest
import torch
from torch import nn

from ganforge import TrainConfig
from ganforge.errors import ConfigError
from ganforge.train.run import Run, stretch


class Linear(nn.Module):
    def __init__(self, A):
        super().__init__()
        self.A = nn.Parameter(A)
        self.latent_dim = A.shape[1]

    def forward(self, z, y=None):
        return z @ self.A.T


class Step(nn.Module):
    """Two modes, at x = -1 and x = +1, joined by a steep ramp where |z_0| < 0.05: the gap G must cross."""
    latent_dim = 2

    def forward(self, z, y=None):
        x = torch.stack([(z[:, 0] / 0.05).clamp(-1, 1), torch.zeros_like(z[:, 0])], dim=1)
        return x if y is None else x + 10 * y[:, None].float()  # the class shows in the sample


def test_stretch_is_the_squared_frobenius_norm_of_the_jacobian():
    torch.manual_seed(0)
    A = torch.randn(5, 3)
    z = torch.randn(7, 3)
    exact = stretch(Linear(A), z)  # 3 noise dimensions <= 16 directions: one derivative per dimension
    assert torch.allclose(exact, A.pow(2).sum().expand(7), rtol=1e-5)

    A = torch.randn(10, 64) / 8  # above 16 dimensions: Hutchinson's estimate, unbiased
    estimate = stretch(Linear(A), torch.randn(4000, 64), generator=torch.Generator().manual_seed(1))
    assert estimate.std() > 0.05 * estimate.mean()  # really an estimate, not the exact value
    assert estimate.mean().item() == pytest.approx(A.pow(2).sum().item(), rel=0.03)


def test_dropping_removes_the_samples_between_the_modes():
    run = Run("unused", TrainConfig(), Step(), (2,))
    plain = run.sample(4000, seed=3)
    kept = run.sample(4000, seed=3, drop_stretched=0.1)
    between = lambda x: (x[:, 0].abs() < 0.99).float().mean().item()  # noqa: E731
    assert len(kept) == 4000
    assert between(plain) > 0.03  # about 4% of N(0, 1) falls within 0.05 of 0
    assert between(kept) == 0.0
    assert abs((kept[:, 0] > 0).float().mean().item() - 0.5) < 0.03  # both modes keep their share
    assert torch.equal(run.sample(4000, seed=3, drop_stretched=0.0), plain)  # off: the plain draw, unchanged
    assert torch.equal(run.sample(4000, seed=3, drop_stretched=0.1), kept)  # the same seed, the same samples


def test_dropping_keeps_each_sample_its_class():
    run = Run("unused", TrainConfig(), Step(), (2,), classes=["a", "b", "c"])
    labels = torch.tensor([2, 0, 0, 1, 2, 2, 1, 0] * 50)
    x = run.sample(len(labels), seed=0, labels=labels, drop_stretched=0.2)
    assert torch.equal((x[:, 0] / 10).round().long(), labels)  # every sample was made for its own class
    assert ((x[:, 0] - 10 * labels).abs() > 0.99).all()  # and none of them lies between the modes


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0, float("nan")])
def test_fraction_outside_0_1_is_refused(fraction):
    run = Run("unused", TrainConfig(), Step(), (2,))
    with pytest.raises(ConfigError, match=r"--drop-stretched .* \[0, 1\)"):
        run.sample(10, drop_stretched=fraction)


def test_cli_sample_and_eval_drop_stretched_points(tmp_path, capsys):
    import json

    import numpy as np

    from ganforge.cli.main import main

    run = tmp_path / "r"
    assert main(["train", "--data", "grid25", "--steps", "30", "--batch", "32", "--quiet", "--out", str(run)]) == 0
    assert main(["sample", str(run), "--n", "50", "--out", str(tmp_path / "plain.npy")]) == 0
    assert main(["sample", str(run), "--n", "50", "--drop-stretched", "0.2", "--out", str(tmp_path / "kept.npy")]) == 0
    plain, kept = np.load(tmp_path / "plain.npy"), np.load(tmp_path / "kept.npy")
    assert plain.shape == kept.shape == (50, 2) and not np.array_equal(plain, kept)
    assert main(["eval", str(run), "--n", "100", "--drop-stretched", "0.2"]) == 0
    assert json.loads((run / "eval.json").read_text())["drop_stretched"] == 0.2
    capsys.readouterr()
