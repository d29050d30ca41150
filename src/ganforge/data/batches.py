"""Batches drawn from a dataset held in memory (on the training device when it fits): one random
permutation per epoch, slices of it as batches, no per-sample Python work. Images stay uint8 (a
quarter of float32's memory) and are converted to float on the device, one batch at a time. Built with
labels (for a class-conditional GAN), `labels` holds the classes of the batch `next()` returned last.

The order is a pure function of (seed, epoch), so the position (epoch, index) is all a checkpoint
needs to resume the exact same sequence of batches. Under torchrun every rank builds the same order
and takes its own slice of each global batch (`rank`, `world_size`); the position counts global
batches, so a run resumes with any number of processes.
"""

from __future__ import annotations

import torch

from ganforge.data.dataset import to_float


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the samples in one epoch: a pure function of (seed, epoch), the same on every rank
    and for in-memory and streamed data."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def shard(global_batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (the global batch is a multiple of the world size)."""
    n = global_batch.shape[0] // world_size
    return global_batch[rank * n:(rank + 1) * n]


def make_batches(dataset, batch_size: int, seed: int, device, rank: int = 0, world_size: int = 1,
                 workers: int | None = None, labels: bool = False):
    """Batches from memory for a `Dataset`, streamed from disk for an `ImageStream`; same interface, same order.
    labels: also deliver each batch's classes (`.labels` after `next()`), for a conditional GAN."""
    from ganforge.data.streaming import ImageStream, StreamingBatches, default_workers

    if isinstance(dataset, ImageStream):
        workers = default_workers() if workers is None else workers
        return StreamingBatches(dataset, batch_size, seed, device, rank=rank, world_size=world_size, workers=workers,
                                with_labels=labels)
    return InMemoryBatches(dataset.data, batch_size, seed, device, rank=rank, world_size=world_size,
                           labels=dataset.labels if labels else None)


class InMemoryBatches:
    def __init__(self, data: torch.Tensor, batch_size: int, seed: int, device: torch.device | str = "cpu",
                 labels: torch.Tensor | None = None, rank: int = 0, world_size: int = 1):
        if batch_size > data.shape[0]:
            batch_size = data.shape[0] - data.shape[0] % world_size
        self.device = torch.device(device)
        self.data = data.to(self.device) if fits_on(self.device, data) else _pinned(data)
        self.all_labels = labels.to(self.data.device) if labels is not None else None
        self.labels = None  # the classes of the last batch; None without labels
        self.batch_size, self.seed = batch_size, seed  # batch_size: the global batch
        self.rank, self.world_size = rank, world_size
        self.per_epoch = data.shape[0] // batch_size  # the last incomplete batch is dropped
        self.epoch, self.index = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        return epoch_order(self.seed, epoch, self.data.shape[0]).to(self.data.device)

    def next_indices(self) -> torch.Tensor:
        if self.index == self.per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)
        start = self.index * self.batch_size
        self.index += 1
        return shard(self._order[start:start + self.batch_size], self.rank, self.world_size)

    def next(self) -> torch.Tensor:
        """The next batch as float on the device ([-1, 1] for images); its classes go to `self.labels`."""
        indices = self.next_indices()
        if self.all_labels is not None:
            self.labels = self.all_labels[indices].to(self.device, non_blocking=True)
        return to_float(self.data[indices].to(self.device, non_blocking=True))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = state["epoch"], state["index"]
        self._order = self._permutation(self.epoch)

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.index / self.per_epoch


def fits_on(device: torch.device, data: torch.Tensor, share: float = 0.25) -> bool:
    """Whether the dataset may live on the device: always on the CPU; on a GPU, when it takes at
    most `share` of the free memory (the rest is for the models, activations and optimiser)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return data.numel() * data.element_size() <= share * free


def _pinned(data: torch.Tensor) -> torch.Tensor:
    """Host memory the GPU can copy from asynchronously (batches then overlap with compute)."""
    return data.pin_memory() if torch.cuda.is_available() else data
