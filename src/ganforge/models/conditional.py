"""The two pieces that make a G and a D class-conditional, shared by every model family.

G side: `ConditionalBatchNorm2d` (de Vries et al. 2017, as in SNGAN / BigGAN): BatchNorm without its
own affine, then a per-class scale and shift, so every layer of G knows the class, not only its input.
D side: `ProjectionHead` (Miyato & Koyama 2018): logit = psi(h) + <embed(y), h>. The class enters D
as an inner product with D's features instead of an extra input channel, which is what lets a
conditional D tell "a good shoe" from "a good image that is not a shoe".
"""

from __future__ import annotations

import torch
from torch import nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose scale and shift are looked up by class: y (B,) int64. Starts as plain BN (scale 1, shift 0)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.scale(y)[:, :, None, None] + self.shift(y)[:, :, None, None]


class ProjectionHead(nn.Module):
    """The class term of a projection discriminator: <embed(y), h> for features h (B, F), added to
    D's unconditional logit psi(h). `wrap` applies spectral norm where D uses it."""

    def __init__(self, features: int, num_classes: int, wrap=lambda m: m):
        super().__init__()
        embed = nn.Embedding(num_classes, features)
        nn.init.normal_(embed.weight, 0.0, 0.02)
        self.embed = wrap(embed)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.embed(y) * h).sum(dim=1)


class ClassEmbedding(nn.Module):
    """A learned vector per class, concatenated to z: the conditioning of G's that have no BatchNorm to hook
    into (the MLP) or where the input is the natural place (DCGAN's first layer)."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, dim)
        nn.init.normal_(self.embed.weight, 0.0, 1.0)  # on the scale of z

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, self.embed(y)], dim=1)
