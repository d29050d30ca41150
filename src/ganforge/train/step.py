"""One training step of the GAN game, as the seeds describe it.

G and D form one pipeline, noise -> G -> image -> D -> one number. A step is:

  D phase (k times): D sees a real batch (target "real") and G's fakes (target "fake").
                     G is held fixed: its output is produced without a graph, so G gets no gradient.
                     Only D's optimiser steps.
  G phase:           fresh fakes go through D with the target "real". Gradients flow back through D
                     into G, but D's parameters are frozen (requires_grad off), so they get no
                     gradient and do not change. Only G's optimiser steps.

A class-conditional GAN passes each real batch's labels along: D judges (image, class) pairs, and the
fakes are asked for the classes of the real batch beside them, a random draw from the data's class
distribution, so that D sees real and fake for the same classes. Then G(z, y) and D(x, y); otherwise
G(z) and D(x). With `--mode-seeking`, G's loss also keeps the fakes of different noise apart, and in a
conditional G phase each pair of fakes is asked for one class.

The loss object (`ganforge.losses`) supplies the formulas; this file decides which network learns in
which phase. Nothing here touches files or the host: the statistics stay on the device until the
trainer asks for them.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.losses import GANLoss

# Order of the statistics vector a step returns.
STATS = ("loss_d", "loss_g", "d_real", "d_fake", "d_acc")


class GANStep:
    def __init__(self, G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 loss: GANLoss, latent_dim: int, g_steps: int = 1):
        self.G, self.D, self.opt_g, self.opt_d = G, D, opt_g, opt_d
        self.loss, self.latent_dim, self.g_steps = loss, latent_dim, g_steps

    def update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and one optimiser step (fp16 training swaps in a loss-scaled version: train/speed.py)."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def noise(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=like.device)

    def d_phase(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Update D on one real batch and as many fakes. G does not learn here."""
        y = () if labels is None else (labels,)  # the class goes into G and D only when conditional
        with torch.no_grad():  # G held fixed: no graph through G, so no gradient can reach it
            fake = self.G(self.noise(real.shape[0], real), *y)
        real_logits, fake_logits = self.D(real, *y), self.D(fake, *y)
        loss = self.loss.d_loss(real_logits, fake_logits)
        penalty = self.loss.penalty(lambda x: self.D(x, *y), real, fake)
        if penalty is not None:
            loss = loss + penalty
        self.update(loss, self.opt_d)
        self.loss.after_d_step(self.D)
        return loss.detach(), real_logits.detach(), fake_logits.detach()

    def g_phase(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Update G through a frozen D: fakes are scored with the target "real". D does not learn here."""
        mode_seeking = self.loss.mode_seeking  # None unless asked for
        fake_labels = mode_seeking.pair_labels(labels) if mode_seeking and labels is not None else labels
        y, fake_y = ((), ()) if labels is None else ((labels,), (fake_labels,))
        self.D.requires_grad_(False)  # gradients pass through D's activations, never into its weights
        try:
            z = self.noise(real.shape[0], real)
            fake = self.G(z, *fake_y)
            fake_logits = self.D(fake, *fake_y)
            real_logits = self.D(real, *y) if self.loss.uses_real_in_g else None
            loss = self.loss.g_loss(fake_logits, real_logits)
            if mode_seeking:
                loss = loss + mode_seeking(z, fake)
            self.update(loss, self.opt_g)
        finally:
            self.D.requires_grad_(True)
        return loss.detach()

    def __call__(self, real_batches: list[torch.Tensor], labels: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """k D updates (one per real batch), then `g_steps` G updates. Returns STATS as one device tensor.
        `labels` holds each real batch's classes for a conditional GAN (None otherwise)."""
        labels = labels or [None] * len(real_batches)
        for real, y in zip(real_batches, labels):
            loss_d, real_logits, fake_logits = self.d_phase(real, y)
        for _ in range(self.g_steps):
            loss_g = self.g_phase(real_batches[-1], labels[-1])
        d_real, d_fake = self.loss.readout(real_logits.float(), fake_logits.float())
        return torch.stack([loss_d.float(), loss_g.float(), d_real.mean(), d_fake.mean(),
                            self.loss.accuracy(real_logits, fake_logits).float()])
