"""Fully connected G and D: the right size for 2-D mixtures and for tiny images such as 8x8 digits.

Class-conditional (num_classes > 0): G gets a class embedding concatenated to z, D a projection head.
With components > 0, G's noise is split into equally likely components (`LatentComponents`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.models.conditional import ClassEmbedding, ProjectionHead


class LatentComponents(nn.Module):
    """Noise in K equally likely Gaussian components (DeLiGAN, Gurumurthy et al. 2017): z's first coordinate
    picks component k by its Gaussian quantile, and the others become mu_k + sigma_k * z, both learned.

    Why: a continuous G maps a connected latent space onto a connected set, so data in separate clusters
    (grid25) gets bridges of poor samples between them. Components that start apart (sigma 0.2 against
    mu ~ N(0, 1)) let G send each to its own cluster. The noise G is given stays N(0, I), so sampling,
    interpolation and checkpoints work as without components.
    """

    def __init__(self, components: int, latent_dim: int, sigma: float = 0.2):
        super().__init__()
        if components < 1 or latent_dim < 2:
            raise ValueError(f"latent components need components >= 1 and a latent of at least 2 dimensions "
                             f"(one picks the component), got {components} and {latent_dim}")
        self.components, self.out_dim = components, latent_dim - 1
        self.mu = nn.Parameter(torch.randn(components, latent_dim - 1))
        self.log_sigma = nn.Parameter(torch.full((components, latent_dim - 1), math.log(sigma)))

    def component(self, z: torch.Tensor) -> torch.Tensor:
        """Which component each noise vector falls in: (B,) int64, each value equally likely for z ~ N(0, I)."""
        uniform = 0.5 * (1 + torch.erf(z[:, 0].float() / math.sqrt(2)))
        return (uniform * self.components).long().clamp_(0, self.components - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = self.component(z)
        return (self.mu[k] + self.log_sigma[k].exp() * z[:, 1:]).to(z.dtype)


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], hidden: int = 256, layers: int = 3,
                 num_classes: int = 0, components: int = 0):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.out_shape = tuple(out_shape)
        self.is_image = len(out_shape) == 3
        self.components = LatentComponents(components, latent_dim) if components else None
        noise_width = self.components.out_dim if components else latent_dim  # what reaches the first layer
        self.embed = ClassEmbedding(num_classes, noise_width) if num_classes else None
        blocks, width = [], noise_width * (2 if num_classes else 1)
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        blocks.append(nn.Linear(width, math.prod(out_shape)))
        if self.is_image:
            blocks.append(nn.Tanh())  # images live in [-1, 1]; points are unbounded
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.components is not None:
            z = self.components(z)
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
