"""An exponential moving average (EMA) of G's weights, the generator that sampling and evaluation use.

G's weights keep moving while G and D chase each other; their running average sits nearer the
centre of that orbit and gives visibly cleaner samples (Karras et al. 2018, Yazici et al. 2019).
After each G update: ema = d * ema + (1 - d) * G, with d = min(decay, (1 + t) / (10 + t)) at update t,
so early on, while G changes fast, the average forgets quickly instead of dragging in the random
initial weights. Buffers (BatchNorm running statistics) are copied as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, G: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(G).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay of the next update: warms up from 0.1 towards `decay`."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        d = self.current_decay()
        for avg, live in zip(self.module.parameters(), G.parameters()):
            avg.lerp_(live.detach().to(avg.dtype), 1 - d)
        for avg, live in zip(self.module.buffers(), G.buffers()):
            avg.copy_(live)
        self.updates += 1
