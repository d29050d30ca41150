"""DiffAugment (Zhao et al. 2020): random, differentiable transformations of every image D sees.

With little data D memorises the training set and G's signal collapses. Augmenting only the real
images would teach G to produce augmented images; DiffAugment instead transforms real and fake
images alike, in both the D and the G phase, and differentiably, so G still gets gradients through
the transformation. The policies are the paper's:

- color: random brightness (+-0.5), saturation (x0 to x2) and contrast (x0.5 to x1.5) per image;
- translation: shift by up to 1/8 of the image size, zero-padded;
- cutout: zero a random square of half the image size.

Randomness comes from the augmenter's own generator on the training device, so augmenting does not
move the training noise, and the checkpoint restores it on resume.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in str(text).split(",") if p.strip())
    bad = [p for p in names if p not in POLICIES]
    if bad or not names:
        raise ConfigError(f"unknown --augment '{text}': use a comma-separated list of {', '.join(POLICIES)}")
    return names


class DiffAugment:
    def __init__(self, policy: str, seed: int = 0, device: torch.device | str = "cpu"):
        self.policy = parse_policy(policy)
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            x = getattr(self, name)(x)
        return x

    def _rand(self, *shape, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator, device=like.device, dtype=like.dtype)

    def _randint(self, low: int, high: int, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randint(low, high, (n, 1, 1), generator=self.generator, device=like.device)

    def color(self, x):
        n = x.shape[0]
        x = x + (self._rand(n, 1, 1, 1, like=x) - 0.5)  # brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (self._rand(n, 1, 1, 1, like=x) * 2) + mean  # saturation
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (self._rand(n, 1, 1, 1, like=x) + 0.5) + mean  # contrast

    def translation(self, x, ratio: float = 0.125):
        n, _, h, w = x.shape
        sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
        dy, dx = self._randint(-sh, sh + 1, n, x), self._randint(-sw, sw + 1, n, x)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        # read from a copy padded with one ring of zeros; indices past the edge land on the ring
        src_y = (rows + dy + 1).clamp(0, h + 1).expand(n, h, w)
        src_x = (cols + dx + 1).clamp(0, w + 1).expand(n, h, w)
        padded = F.pad(x, [1, 1, 1, 1])
        index = (src_y * (w + 2) + src_x).view(n, 1, h * w).expand(-1, x.shape[1], -1)
        return padded.flatten(2).gather(2, index).view_as(x)

    def cutout(self, x, ratio: float = 0.5):
        n, _, h, w = x.shape
        ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
        top = self._randint(0, h + (1 - ch % 2), n, x) - ch // 2
        left = self._randint(0, w + (1 - cw % 2), n, x) - cw // 2
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
        return x * (~inside).unsqueeze(1).to(x.dtype)

    def state_dict(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


class Augmented(nn.Module):
    """D that augments whatever it is shown: real or fake, D phase or G phase, penalties included."""

    def __init__(self, D: nn.Module, augment: DiffAugment):
        super().__init__()
        self.inner, self.augment = D, augment

    def forward(self, x: torch.Tensor, *y: torch.Tensor) -> torch.Tensor:
        return self.inner(self.augment(x), *y)  # a conditional D also gets the classes
