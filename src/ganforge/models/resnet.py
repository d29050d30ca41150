"""ResNet G and D in the style of SNGAN (Miyato et al. 2018): residual blocks, nearest-neighbour
upsampling in G (BatchNorm + ReLU before each conv), average-pool downsampling in D, spectral norm on
every weight of D (its Lipschitz bound, so no BatchNorm there), global sum pooling and a linear head.

Residual paths let gradients reach early layers, so these nets train deeper and more stably than
DCGAN's plain stacks. Resolutions r = b * 2^n (b in 4..7, 16 <= r <= 128): G starts from a b x b map
and runs n up-blocks; D runs n down-blocks and one more at b x b. Channels double per level from
`width` at full resolution, capped at 8 * width.

Class-conditional (num_classes > 0): conditional BatchNorm in G's blocks, a projection head in D.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge.models import dcgan
from ganforge.models.conditional import ConditionalBatchNorm2d, ProjectionHead
from ganforge.models.dcgan import plan

SUPPORTED = [r for r in dcgan.SUPPORTED if r >= 16]


def check_image_shape(shape: tuple[int, ...]) -> None:
    dcgan.check_image_shape(shape, "resnet", SUPPORTED)


def channels_per_level(width: int, levels: int) -> list[int]:
    """Channels at each resolution level, full resolution first: width, 2 width, ... capped at 8 width."""
    return [width * min(2 ** k, 8) for k in range(levels)]


class BatchNorm2d(nn.BatchNorm2d):
    """Plain BatchNorm that takes (and ignores) the class, so blocks call norm(x, y) either way."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


def g_norm(channels: int, num_classes: int) -> nn.Module:
    return ConditionalBatchNorm2d(channels, num_classes) if num_classes else BatchNorm2d(channels)


class GBlock(nn.Module):
    """x -> BN-ReLU-up-conv3x3-BN-ReLU-conv3x3, plus up-conv1x1(x): doubles the resolution."""

    def __init__(self, c_in: int, c_out: int, num_classes: int = 0):
        super().__init__()
        self.norm1, self.conv1 = g_norm(c_in, num_classes), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.norm2, self.conv2 = g_norm(c_out, num_classes), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """x -> (ReLU)-conv3x3-ReLU-conv3x3-(avgpool), plus conv1x1-(avgpool)(x). The first block of D sees
    raw pixels, so it skips the leading ReLU and pools before its shortcut conv (SNGAN's 'optimized' block)."""

    def __init__(self, c_in: int, c_out: int, downsample: bool = True, first: bool = False):
        super().__init__()
        self.downsample, self.first = downsample, first
        self.conv1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.conv2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = spectral_norm(nn.Conv2d(c_in, c_out, 1)) if (downsample or c_in != c_out) else None

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.conv2(F.relu(self.conv1(x if self.first else F.relu(x)))))
        if self.skip is None:
            return h + x
        return h + (self.skip(self.pool(x)) if self.first else self.pool(self.skip(x)))


class ResNetGenerator(nn.Module):
    def __init__(self, latent_dim: int, out_shape: tuple[int, int, int], width: int = 64, num_classes: int = 0):
        super().__init__()
        channels, resolution, _ = out_shape
        self.base, levels = plan(resolution)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        chans = channels_per_level(width, levels + 1)[::-1]  # e.g. 512, 256, 128, 64 for 32x32
        self.fc = nn.Linear(latent_dim, chans[0] * self.base ** 2)
        self.blocks = nn.ModuleList(GBlock(c_in, c_out, num_classes) for c_in, c_out in zip(chans, chans[1:]))
        self.norm = nn.BatchNorm2d(chans[-1])
        self.out = nn.Conv2d(chans[-1], channels, 3, 1, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], -1, self.base, self.base)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(F.relu(self.norm(h))))


class ResNetDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], width: int = 64, num_classes: int = 0):
        super().__init__()
        channels, resolution, _ = in_shape
        _, levels = plan(resolution)
        chans = channels_per_level(width, levels)  # e.g. 64, 128, 256 for 32x32
        blocks = [DBlock(channels, chans[0], first=True)]
        blocks += [DBlock(c_in, c_out) for c_in, c_out in zip(chans, chans[1:])]
        blocks.append(DBlock(chans[-1], chans[-1], downsample=False))
        self.blocks = nn.Sequential(*blocks)
        self.linear = spectral_norm(nn.Linear(chans[-1], 1))
        self.projection = ProjectionHead(chans[-1], num_classes, wrap=spectral_norm) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        logit = self.linear(h).view(-1)
        if self.projection is not None:
            logit = logit + self.projection(h, y)
        return logit
