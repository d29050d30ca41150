"""The fast path, as wrappers around `GANStep` so the step itself stays the readable seed loop:

  - precision: autocast in bf16 (or fp16 with a gradient scaler on CUDA); `auto` picks bf16 where
    the hardware runs it fast (CPUs with AVX512-BF16 / AMX, GPUs with bf16 support), fp32 elsewhere;
  - channels_last: conv models and their batches in NHWC, the layout oneDNN and cuDNN prefer;
  - fused / foreach optimisers: one kernel (or a few) for all parameters instead of one per tensor;
  - compile: `torch.compile` of G and D (opt-in: compiling costs minutes on a small CPU);
  - CUDA graphs: the whole step recorded once and replayed (train/graphs.py).

None of these touches the host: the step's statistics stay on the device.
"""

from __future__ import annotations

import contextlib
import functools
import logging

import torch
from torch import nn

from ganforge.train.graphs import StepGraph

log = logging.getLogger("ganforge")


# ---------------------------------------------------------------------------- precision
@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls and convolutions run natively instead of being emulated."""
    try:
        if torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported():
            return True
    except AttributeError:  # older torch: read the CPU flags ourselves
        pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device, images: bool = True) -> str:
    """'auto' -> 'bf16' where the device runs bf16 fast, else 'fp32'. fp16 only makes sense on CUDA.
    2-D points stay in fp32: bf16 keeps 8 significant bits, a step of 0.008 near radius 1, which is
    ring8's whole std (0.01); and a tiny MLP gains nothing from it (fp32 trains grid25 20% faster here)."""
    if name != "auto":
        return name
    if not images:
        return "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device, cache: bool = True):
    """Mixed precision as a context around the whole step (forward passes and losses). `cache` keeps
    the low-precision copies of weights for the rest of the context; a CUDA graph recording must not."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision], cache_enabled=cache)


# ---------------------------------------------------------------------------- memory layout
def has_convolutions(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def to_channels_last(*modules: nn.Module) -> bool:
    """Put conv models in channels_last (NHWC); returns whether it did (MLPs stay as they are)."""
    if not all(has_convolutions(m) for m in modules):
        return False
    for m in modules:
        m.to(memory_format=torch.channels_last)
    return True


# ---------------------------------------------------------------------------- optimisers
def optimizer_kwargs(name: str, device: torch.device, capturable: bool = False) -> dict:
    """Fused Adam (one kernel over all parameters) on CPU and CUDA; foreach (a few batched kernels)
    otherwise. Both compute exactly what the per-tensor loop computes. `capturable` keeps the step
    counters on the GPU, so that a CUDA graph can replay the update."""
    kwargs = {"fused": True} if name == "adam" and device.type in ("cpu", "cuda") else {"foreach": True}
    return {**kwargs, "capturable": True} if capturable else kwargs


def match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimiser state the memory layout of its parameter. Checkpoints store tensors
    contiguous, parameters may be channels_last, and the fused CPU Adam assumes both share one
    layout: with mismatched strides it silently computes wrong updates (seen with torch 2.13)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


# ---------------------------------------------------------------------------- the wrapped step
class FastStep:
    """Calls a `GANStep` with the speed settings around it. Same arguments, same result."""

    def __init__(self, step, *, device: torch.device, precision: str = "fp32", channels_last: bool = False,
                 scaler: torch.amp.GradScaler | None = None, cuda_graphs: bool = False):
        self.step, self.device, self.precision = step, device, precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if scaler is not None:
            step.update = functools.partial(scaled_update, scaler)
        self.graph = StepGraph(self.eager) if cuda_graphs else None

    def __call__(self, real_batches: list[torch.Tensor], labels: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        labels = labels or [None] * len(real_batches)
        if self.graph is not None:
            return self.graph(real_batches, labels)
        return self.eager(real_batches, labels)

    def eager(self, real_batches: list[torch.Tensor], labels: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """The step launched op by op (what a CUDA graph records)."""
        if self.memory_format is torch.channels_last:
            real_batches = [x.contiguous(memory_format=torch.channels_last) for x in real_batches]
        with autocast(self.precision, self.device, cache=self.graph is None):
            return self.step(real_batches, labels)

    def reset(self) -> None:
        """Call after loading a checkpoint: a recorded step refers to the optimisers' old state tensors."""
        if self.graph is not None:
            self.graph.reset()


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling (CUDA); bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None


def scaled_update(scaler, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    """`GANStep.update` with fp16 loss scaling: scale, backward, unscale-and-step (skipped on inf), adjust."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def compiled(module: nn.Module) -> nn.Module:
    """`torch.compile`d view of a module sharing its parameters (checkpoints keep using the original)."""
    return torch.compile(module)
