"""Fully connected G and D: the right size for 2-D mixtures and for tiny images such as 8x8 digits.

Class-conditional (num_classes > 0): G gets a class embedding concatenated to z, D a projection head.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.models.conditional import ClassEmbedding, ProjectionHead


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], hidden: int = 256, layers: int = 3,
                 num_classes: int = 0):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.out_shape = tuple(out_shape)
        self.is_image = len(out_shape) == 3
        self.embed = ClassEmbedding(num_classes, latent_dim) if num_classes else None
        blocks, width = [], latent_dim * (2 if num_classes else 1)
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        blocks.append(nn.Linear(width, math.prod(out_shape)))
        if self.is_image:
            blocks.append(nn.Tanh())  # images live in [-1, 1]; points are unbounded
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = self.embed(z, y)
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """norm: 'spectral' puts spectral normalisation on every layer; other values add nothing (an MLP
    D has no batch or layer norm)."""

    def __init__(self, in_shape: tuple[int, ...], hidden: int = 256, layers: int = 3, norm: str = "none",
                 num_classes: int = 0):
        super().__init__()
        from ganforge.models.norms import spectral

        wrap = spectral if norm == "spectral" else (lambda layer: layer)
        blocks, width = [nn.Flatten()], math.prod(in_shape)
        for _ in range(layers):
            blocks += [wrap(nn.Linear(width, hidden)), nn.LeakyReLU(0.2, inplace=True)]
            width = hidden
        blocks.append(wrap(nn.Linear(width, 1)))
        self.net = nn.Sequential(*blocks)  # features, then the linear head net[-1]
        self.projection = ProjectionHead(width, num_classes, wrap=wrap) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.projection is None:
            return self.net(x).view(-1)
        h = self.net[:-1](x)
        return self.net[-1](h).view(-1) + self.projection(h, y)
