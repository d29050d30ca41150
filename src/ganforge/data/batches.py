"""Batches (and their labels, for a conditional GAN) drawn from a dataset held in memory (on the training device when it fits): one random
permutation per epoch, slices of it as batches, no per-sample Python work.

The order is a pure function of (seed, epoch), so the position (epoch, index) is all a checkpoint
needs to resume the exact same sequence of batches.
"""

from __future__ import annotations

import torch

from ganforge.data.dataset import to_float


class InMemoryBatches:
    def __init__(self, data: torch.Tensor, batch_size: int, seed: int, device: torch.device | str = "cpu",
                 labels: torch.Tensor | None = None):
        if batch_size > data.shape[0]:
            batch_size = data.shape[0]
        self.data = data.to(device)
        self.labels = labels.to(device) if labels is not None else None
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = data.shape[0] // batch_size  # the last incomplete batch is dropped
        self.epoch, self.index = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.data.shape[0], generator=g).to(self.data.device)

    def next_indices(self) -> torch.Tensor:
        if self.index == self.per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)
        start = self.index * self.batch_size
        self.index += 1
        return self._order[start:start + self.batch_size]

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next batch as float on the device ([-1, 1] for images), and its labels (None without labels)."""
        indices = self.next_indices()
        return to_float(self.data[indices]), (self.labels[indices] if self.labels is not None else None)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = state["epoch"], state["index"]
        self._order = self._permutation(self.epoch)

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.index / self.per_epoch
