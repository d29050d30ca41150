"""Several processes training one GAN, on PyTorch's own engine: torchrun starts the processes,
torch.distributed connects them, DistributedDataParallel (DDP) averages the gradients.

    torchrun --nproc_per_node=8 -m ganforge train --batch 512 ...      # 8 GPUs, 64 images per GPU

Why it gives the same result as one process on the global batch:
- `--batch` is the GLOBAL batch. Every rank builds the same per-epoch permutation and takes its own
  contiguous slice of each global batch (`data.batches.shard`), so the ranks see disjoint data.
- Every rank draws the whole global noise batch from the same seeded RNG and keeps its slice
  (`ShardedNoise`), so the RNG states stay identical on all ranks and equal one process's.
- The losses are means over the batch and DDP averages gradients over ranks, so each optimiser step
  sees the gradient of the global batch. (Layers that look across the batch, BatchNorm in training
  mode, see only the rank's slice unless `--sync-bn`; see `wrap`.)

The seeds' freezing under DDP: G and D are wrapped separately. In the G phase D is frozen, so its
DDP wrapper would wait for gradients that never come (unused-parameter errors, or a hang at the next
step). `LearningOnlyDDP` therefore sends D's forward through DDP only while D's weights require
gradients (the D phase) and through the bare module otherwise (the G phase, sampling), so D's
all-reduce never happens inside the G step.
"""

from __future__ import annotations

import datetime
import logging
import os

import torch
from torch import nn

from ganforge.errors import ConfigError, GanforgeError

log = logging.getLogger("ganforge")
SYNC_BN_NEEDS_GPU = ("--sync-bn needs GPUs (PyTorch's SyncBatchNorm runs on CUDA only): drop --sync-bn, "
                     "or use --d-norm layer / --model mlp for batch-independent networks")


class Distributed:
    """Who this process is among the ranks; a single process is rank 0 of 1 and every method is a no-op."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, owns_group: bool = False):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.owns_group = owns_group  # destroy the process group at the end only if we created it

    @classmethod
    def from_env(cls, device: torch.device) -> "Distributed":
        """Join the process group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR:
        NCCL between GPUs, gloo on CPUs. Without those variables: one process."""
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if dist.is_available() and dist.is_initialized():  # the caller set up the group (Python API)
            rank, world_size, owns = dist.get_rank(), dist.get_world_size(), False
        else:
            rank, world_size, owns = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), True
        if world_size == 1:
            return cls()
        if device.type == "cuda" and local_rank >= (gpus := torch.cuda.device_count()):  # one GPU per process
            per_node = os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1))
            raise ConfigError(f"torchrun started {per_node} processes on this machine, which has {gpus} GPU(s): "
                              f"use --nproc_per_node={gpus}, or train on CPUs with --device cpu")
        if owns:
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        if rank != 0:  # rank 0 speaks for all; the others report only problems
            log.setLevel(logging.WARNING)
        return cls(rank, world_size, local_rank, owns)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process: rank with LOCAL_RANK k trains on cuda:k."""
        if device.type == "cuda" and self.enabled:
            return torch.device("cuda", self.local_rank)
        return device

    def check(self, batch: int, sync_bn: bool, device: torch.device) -> None:
        """Settings that cannot work with these processes, refused before anything is written."""
        self.per_rank_batch(batch)
        if sync_bn and device.type != "cuda":
            raise ConfigError(SYNC_BN_NEEDS_GPU)

    def per_rank_batch(self, batch: int) -> int:
        if batch % self.world_size:
            raise ConfigError(f"--batch {batch} (the global batch) does not split evenly over {self.world_size} "
                              f"processes: pass a multiple of {self.world_size}")
        return batch // self.world_size

    # ------------------------------------------------------------------ models
    def wrap(self, G: nn.Module, D: nn.Module, sync_bn: bool) -> tuple[nn.Module, nn.Module]:
        """DDP for G and D separately (D behind `LearningOnlyDDP`).

        BatchNorm: with --sync-bn every BatchNorm becomes SyncBatchNorm (batch statistics over the
        global batch, identical running statistics everywhere, so buffers need no broadcast). Without
        it each rank normalises with its own slice's statistics; G's running statistics (used when
        sampling in eval mode) are copied from rank 0 at each forward (DDP's buffer broadcast). D's
        never are: D runs twice (real, fake) before one backward, and cuDNN's BatchNorm keeps the
        running statistics for its backward, so overwriting them between the two forwards breaks
        autograd; D's running statistics are never used in training mode anyway.
        The modules are changed in place, so the trainer's G and D (used for samples and checkpoints)
        remain the same objects.
        """
        if sync_bn:
            G, D = _to_sync_bn(G), _to_sync_bn(D)
        if not self.enabled:
            return G, D
        from torch.nn.parallel import DistributedDataParallel as DDP

        import inspect

        ids = [self.local_rank] if next(G.parameters()).is_cuda else None
        # newer PyTorch renames broadcast_buffers (the per-forward buffer sync) to forward_sync_buffers
        sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
        ddp_g = DDP(G, device_ids=ids, **{sync: not sync_bn})
        ddp_d = DDP(D, device_ids=ids, **{sync: False})
        return ddp_g, LearningOnlyDDP(ddp_d)

    # ------------------------------------------------------------------ communication
    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The average of a tensor over ranks (the logged statistics: one all-reduce per log line)."""
        if self.enabled:
            import torch.distributed as dist

            values = values.clone()
            dist.all_reduce(values)
            values /= self.world_size
        return values

    def on_main(self, fn):
        """Run fn on rank 0 only and hand its result to every rank; a user mistake rank 0 meets
        (a refused run directory) is raised on every rank, so none is left waiting for the others."""
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except GanforgeError as e:
                error = e
        if self.enabled:
            import torch.distributed as dist

            box = [(result, error)]
            dist.broadcast_object_list(box, src=0)
            result, error = box[0]
        if error is not None:
            raise error
        return result

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.enabled and self.owns_group:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
            self.owns_group = False


class LearningOnlyDDP(nn.Module):
    """D through DDP while it learns, the bare D while it is frozen (G phase) or without a graph.

    DDP registers an all-reduce for every parameter on each forward with a graph; a frozen D produces
    no gradients, so that all-reduce would never complete. Parameters are shared, so both paths score
    with the same weights."""

    def __init__(self, ddp: nn.Module):
        super().__init__()
        self.ddp = ddp

    def forward(self, x: torch.Tensor, *y: torch.Tensor) -> torch.Tensor:
        learning = torch.is_grad_enabled() and any(p.requires_grad for p in self.ddp.module.parameters())
        return self.ddp(x, *y) if learning else self.ddp.module(x, *y)


class ShardedNoise:
    """Noise for one rank: the rows of the global noise batch that belong to this rank's data slice.
    Drawing the whole global batch (cheap: B x latent numbers) keeps every rank's RNG in step with
    one process training on the global batch."""

    def __init__(self, latent_dim: int, rank: int, world_size: int):
        self.latent_dim, self.rank, self.world_size = latent_dim, rank, world_size

    def __call__(self, n: int, like: torch.Tensor) -> torch.Tensor:
        z = torch.randn(n * self.world_size, self.latent_dim, device=like.device)
        return z[self.rank * n:(self.rank + 1) * n]


def _to_sync_bn(module: nn.Module) -> nn.Module:
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module
    if not next(module.parameters()).is_cuda:
        raise ConfigError(SYNC_BN_NEEDS_GPU)
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)
