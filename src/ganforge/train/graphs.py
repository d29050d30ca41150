"""CUDA graphs: record the whole training step once, then replay it with one call per step.

A DCGAN step is a few hundred small kernels (three D passes, two G passes, their backward passes,
BatchNorm, two optimiser updates). On a fast GPU, launching them one by one from Python takes longer
than running them, so the GPU waits on the host. A CUDA graph records the launches of one step and
replays them all at once. What a replay needs, and so what `blockers` checks first:

  - the same work every step: nothing decided on the host inside the step. A lazy penalty computed
    every N steps, fp16's loss scaler (it skips steps when gradients overflow), learning rates that
    change every step (they are baked into the recording), DiffAugment's own random generator and
    DDP's gradient communication each rule graphs out;
  - fixed inputs: each step's batches are copied into buffers that the recording reads;
  - optimisers whose step counters live on the GPU (`capturable=True`);
  - a few eager warm-up steps first, so that lazily created state (Adam's moments, library handles)
    exists before recording. They run on a side stream, as PyTorch asks.

A replay draws fresh noise: PyTorch advances the random generator's offset at every replay. After a
checkpoint is loaded the optimisers hold new state tensors, so the trainer calls `reset()` and the
step is recorded again.

The recording watches only this thread, so the DataLoader's pin-memory thread may go on working.
A recording that fails leaves PyTorch's CUDA random generator unusable in this process (every later
draw raises), so there is no falling back to op by op: the run stops, its checkpoints intact, with one
line that names --cuda-graphs off.
"""

from __future__ import annotations

import logging

import torch

from ganforge.errors import ConfigError

log = logging.getLogger("ganforge")


def blockers(config, device: torch.device, loss, distributed: bool) -> list[str]:
    """Why this run's step cannot be replayed as a CUDA graph (an empty list: it can)."""
    reasons = []
    if device.type != "cuda":
        reasons.append("CUDA graphs need a GPU (--device cuda)")
    if distributed:
        reasons.append("under torchrun the gradients are exchanged outside the step")
    if config.precision == "fp16":
        reasons.append("fp16's loss scaler decides on the host whether to skip a step (use bf16)")
    if config.lr_decay:
        reasons.append("--lr-decay changes the learning rates every step")
    if config.augment not in (None, "", "none"):
        reasons.append("--augment draws from a random generator of its own")
    if loss.differentiates_gradients:
        reasons.append("a gradient penalty (--r1, wgan-gp) is computed only on some steps or needs a double backward")
    return reasons


def wanted(config, device: torch.device, loss, distributed: bool) -> bool:
    """Whether to replay the step as a CUDA graph: `auto` where nothing blocks it, `on` insists
    (one line naming what blocks it), `off` never."""
    mode = config.cuda_graphs
    if mode == "off":
        return False
    reasons = blockers(config, device, loss, distributed)
    if reasons and mode == "on":
        raise ConfigError(f"--cuda-graphs on cannot be used here: {'; '.join(reasons)}. Use --cuda-graphs auto or off")
    if reasons and device.type == "cuda":
        log.info("the step runs without CUDA graphs: %s", "; ".join(reasons))
    return not reasons


class CudaRecorder:
    """How `StepGraph` runs eager warm-up steps and records a graph on a GPU."""

    def __init__(self):
        self.side = torch.cuda.Stream()

    def warm(self, fn):
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = fn()
        torch.cuda.current_stream().wait_stream(self.side)
        return out

    def record(self, fn):
        """Record `fn`'s kernels without running them; returns (replay, the output tensor replay fills)."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = fn()
        return graph.replay, out


class StepGraph:
    """Calls `step(real_batches, labels)` eagerly `warmup` times, then records it once and replays the
    recording for every later call whose inputs have the recorded shapes (others run eagerly).
    `recorder` defaults to the CUDA one; tests pass one that runs on the CPU."""

    def __init__(self, step, warmup: int = 3, recorder=None):
        self.step, self.warmup = step, warmup
        self.recorder = recorder if recorder is not None else CudaRecorder()
        self.reset()

    def reset(self) -> None:
        """Forget the recording: the next calls warm up and record again."""
        self.replay, self.output, self.inputs, self.calls = None, None, None, 0

    @property
    def recorded(self) -> bool:
        return self.replay is not None

    def __call__(self, real_batches: list[torch.Tensor], labels: list[torch.Tensor | None]) -> torch.Tensor:
        given = [*real_batches, *labels]
        if self.recorded and _signature(given) == _signature(self.inputs):
            for buffer, x in zip(self.inputs, given):
                if buffer is not None:
                    buffer.copy_(x)
            self.replay()
            return self.output.clone()  # the next replay overwrites the recorded output
        if self.recorded or self.calls < self.warmup:
            self.calls += 1
            return self.recorder.warm(lambda: self.step(real_batches, labels))
        self.inputs = [None if x is None else x.clone() for x in given]
        k = len(real_batches)
        try:
            self.replay, self.output = self.recorder.record(lambda: self.step(self.inputs[:k], self.inputs[k:]))
        except RuntimeError as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(f"the training step could not be recorded as a CUDA graph ({reason}): "
                              "train with --cuda-graphs off") from e
        return self(real_batches, labels)


def _signature(tensors: list[torch.Tensor | None]) -> list:
    return [None if t is None else (t.shape, t.dtype, t.device) for t in tensors]
