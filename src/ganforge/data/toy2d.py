"""The 2-D Gaussian mixtures used to measure mode collapse, as PacGAN (Lin et al. 2018) defines them.

ring8: 8 modes evenly spaced on the unit circle, std 0.01.
grid25: 25 modes on {-4, -2, 0, 2, 4}^2, std 0.05.
"""

from __future__ import annotations

import math

import torch

from ganforge.data.dataset import Dataset

MIXTURES = {
    "ring8": 0.01,
    "grid25": 0.05,
}
SAMPLES = 100_000


def mixture_modes(name: str) -> torch.Tensor:
    """The (M, 2) centres of a mixture."""
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([angles.cos(), angles.sin()], dim=1).float()
    if name == "grid25":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        return torch.cartesian_prod(axis, axis)
    raise KeyError(name)


def sample_mixture(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n points drawn uniformly over the modes, each with isotropic Gaussian noise."""
    modes = mixture_modes(name)
    which = torch.randint(len(modes), (n,), generator=generator)
    return modes[which] + MIXTURES[name] * torch.randn(n, 2, generator=generator)


def load_mixture(name: str, split: str = "train") -> Dataset:
    """A fixed draw of 100,000 points (seeded by split, so train and test differ)."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    return Dataset(name, sample_mixture(name, SAMPLES, g), modes=mixture_modes(name), mode_std=MIXTURES[name])
