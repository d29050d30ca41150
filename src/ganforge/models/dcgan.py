"""DCGAN (Radford et al. 2016): transposed-conv G, strided-conv D, BatchNorm, LeakyReLU in D,
weights drawn from N(0, 0.02).

Any square resolution r = b * 2^n with b in 4..7 and 8 <= r <= 128 works (28 = 7 * 4, 64 = 4 * 16):
G starts from a b x b map and doubles n times; D mirrors it.

D's head is one linear map of its last feature map to the logit, as in DCGAN; with hidden > 0 it is a small
MLP instead (features -> hidden units -> logit, the InfoGAN-style head of Lucic et al. 2018), which lets D judge
the whole image's shape non-linearly: on Fashion-MNIST it raised the samples' precision more than any other
change measured (config.py).

Class-conditional (num_classes > 0): G gets a class embedding concatenated to z (the classic
conditional DCGAN input), D a projection head on its last feature map, sum-pooled. (Conditional
BatchNorm in G, as in `resnet`, let D win early and learnt the classes far more slowly here.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError
from ganforge.models.conditional import ClassEmbedding, ProjectionHead

SUPPORTED = sorted({b * 2 ** n for b in range(4, 8) for n in range(1, 6) if 8 <= b * 2 ** n <= 128})


def check_image_shape(shape: tuple[int, ...], model: str = "dcgan", supported: list[int] = SUPPORTED) -> None:
    """A one-line error, before any building, for data a convolutional model cannot take."""
    if len(shape) != 3:
        raise ConfigError(f"the {model} model needs image data: use --model mlp for 2-D points")
    _, h, w = shape
    if h != w or h not in supported:
        raise ConfigError(f"{model} cannot build for {h}x{w} images: pass --resolution with one of "
                          f"{', '.join(map(str, supported))}")


def plan(resolution: int) -> tuple[int, int]:
    """(base size b, number of doublings n) with b * 2^n == resolution."""
    for n in range(5, 0, -1):
        b, rest = divmod(resolution, 2 ** n)
        if rest == 0 and 4 <= b <= 7:
            return b, n
    raise ConfigError(f"unsupported resolution {resolution}: use one of {', '.join(map(str, SUPPORTED))}")


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class LatentProjection(nn.ConvTranspose2d):
    """G's first layer: a transposed convolution of the 1x1 noise map to a b x b map, as in DCGAN.
    On a 1x1 input that is one matrix product, and computed as one it runs 2-4x faster on a CPU than
    through the transposed-convolution kernel (same weights, same checkpoints, same result)."""

    def __init__(self, z_size: int, channels: int, size: int):
        super().__init__(z_size, channels, size, 1, 0, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, (k, _), c = z.shape[0], self.kernel_size, self.out_channels
        z = z.reshape(n, self.in_channels)
        if self.weight.is_contiguous():  # (z, C, k, k): the output comes out NCHW
            return F.linear(z, self.weight.view(self.in_channels, -1).t()).view(n, c, k, k)
        # channels_last weights are stored (z, k, k, C): the output comes out channels_last, no copy either way
        w = self.weight.permute(0, 2, 3, 1).reshape(self.in_channels, -1)
        return F.linear(z, w.t()).view(n, k, k, c).permute(0, 3, 1, 2)


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, out_shape: tuple[int, int, int], width: int = 64, num_classes: int = 0):
        super().__init__()
        channels, resolution, _ = out_shape
        base, doublings = plan(resolution)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.embed = ClassEmbedding(num_classes, latent_dim) if num_classes else None
        widths = [width * 2 ** i for i in reversed(range(doublings))]  # e.g. 512, 256, 128, 64 for 64x64
        z_size = latent_dim * (2 if num_classes else 1)
        layers = [LatentProjection(z_size, widths[0], base), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = self.embed(z, y)
        return self.net(z.view(z.shape[0], -1, 1, 1))


def norm_layer(kind: str, channels: int) -> nn.Module:
    """BatchNorm as in DCGAN; 'layer' (GroupNorm with one group) or 'none' where per-sample
    gradients must not mix across the batch, as with the WGAN-GP penalty. 'spectral' normalises
    the weights instead (see DCGANDiscriminator), so it adds no layer here, as in SNGAN."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind in ("none", "spectral"):
        return nn.Identity()
    raise ConfigError(f"unknown D normalisation '{kind}': use batch, layer, spectral or none")


class DCGANDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], width: int = 64, norm: str = "batch", num_classes: int = 0,
                 hidden: int = 0):
        super().__init__()
        channels, resolution, _ = in_shape
        base, doublings = plan(resolution)
        widths = [width * 2 ** i for i in range(doublings)]  # e.g. 64, 128, 256, 512 for 64x64
        layers = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), norm_layer(norm, c_out), nn.LeakyReLU(0.2, inplace=True)]
        if hidden:
            layers.append(nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * base * base, hidden),
                                        nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, 1)))
        else:
            layers.append(nn.Conv2d(widths[-1], 1, base, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)  # features, then the head net[-1]: one logit from the b x b map
        self.apply(dcgan_init)
        wrap = lambda m: m  # noqa: E731
        if norm == "spectral":
            from ganforge.models.norms import spectral
            for layer in list(self.net.modules()):
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    spectral(layer)
            wrap = spectral
        self.projection = ProjectionHead(widths[-1], num_classes, wrap=wrap) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.projection is None:
            return self.net(x).view(-1)
        h = self.net[:-1](x)
        return self.net[-1](h).view(-1) + self.projection(h.sum(dim=(2, 3)), y)
