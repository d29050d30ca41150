"""An exponential moving average (EMA) of G's weights, the generator that sampling and evaluation use.

G's weights keep moving while G and D chase each other; their running average sits nearer the
centre of that orbit and gives visibly cleaner samples (Karras et al. 2018, Yazici et al. 2019).
After each G update: ema = d * ema + (1 - d) * G, with d = min(decay, (1 + t) / (10 + t)) at update t,
so early on, while G changes fast, the average forgets quickly instead of dragging in the random
initial weights.

BatchNorm's running statistics cannot be averaged like weights: they describe the activations of G's
current weights, not of the averaged ones, and the mismatch costs quality (Fashion-MNIST classifier FD
4.87 with G's statistics, 4.43 with the average's own). So before the average is used (a sample grid, an
evaluation, a checkpoint, the end of training), `measure_batchnorm` runs it in training mode on a few
batches of fresh noise and keeps the mean statistics (the "standing statistics" of BigGAN, Brock et al. 2019).
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
        self.norms = [m for m in self.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.measured_at = None  # the update count when the BatchNorm statistics were last measured

    def current_decay(self) -> float:
        """The decay of the next update: warms up from 0.1 towards `decay`."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        d = self.current_decay()
        # one batched kernel per dtype instead of one per tensor: on a GPU the launches are the cost
        torch._foreach_lerp_(list(self.module.parameters()), [p.detach() for p in G.parameters()], 1 - d)
        buffers = list(self.module.buffers())
        if buffers:  # any buffer of G; BatchNorm's are measured afresh before use
            torch._foreach_copy_(buffers, list(G.buffers()))
        self.updates += 1

    @torch.no_grad()
    def measure_batchnorm(self, latent_dim: int, batch: int, device: torch.device, seed: int,
                          num_classes: int = 0, batches: int = 16) -> None:
        """Set the average's BatchNorm statistics to the mean over `batches` batches of its own activations.
        16 batches were as good as 200 (FD 4.40 / 4.46). Its own noise generator, seeded by `seed` and the
        update count, leaves the training RNG alone, so a resumed run saves the same statistics."""
        if not self.norms or self.measured_at == self.updates:
            return
        g = torch.Generator().manual_seed(seed * 100_003 + self.updates)
        momenta = [m.momentum for m in self.norms]
        for m in self.norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative mean over the batches
        self.module.train()
        try:
            for _ in range(batches):
                z = torch.randn(batch, latent_dim, generator=g).to(device)
                y = (torch.randint(num_classes, (batch,), generator=g).to(device),) if num_classes else ()
                self.module(z, *y)
        finally:
            for m, momentum in zip(self.norms, momenta):
                m.momentum = momentum
            self.module.eval()
        self.measured_at = self.updates
