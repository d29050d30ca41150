"""`ganforge bench`: training throughput of ganforge's step against the classic loop, in one process.

Honest-measurement rules this module follows:
  - both loops train the same architecture on the same data at the same batch size, in the same
    process, with the same threads;
  - warm-up steps (allocator, oneDNN / cuDNN primitive creation, compilation) are not timed;
  - the two loops alternate in short chunks, so load from other processes slows both alike;
  - FLOPs are counted by torch.utils.flop_counter over one full step of each loop (D phase + G
    phase), so achieved FLOP/s and utilisation = achieved / peak follow from the step time;
  - the peak is measured here (a large matmul in the step's dtype) or, on a known GPU, its dense spec.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time

import torch

# Dense (no sparsity) tensor-core peaks from the vendors' data sheets, FLOP/s.
# "tf32": the tensor-core rate that cuDNN's fp32 convolutions run at while torch.backends.cudnn.allow_tf32
# is on (PyTorch's default), so fp32 conv models are compared against it rather than the plain fp32 rate.
GPU_DENSE_PEAK = {
    "H100": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},
    "H200": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "L4": {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30e12},
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------------------- primitives
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn) -> int:
    """FLOPs of one call of `fn` (convolutions and matmuls, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def measured_peak_flops(precision: str, device: torch.device, seconds: float = 2.0) -> float:
    """Best FLOP/s of large square matmuls in the given precision, with the current thread count.
    The best of many short products: on a shared machine some of them run without being preempted."""
    sizes = (4096, 8192) if device.type == "cuda" else (512, 1024)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=DTYPES[precision])
        b = torch.randn(n, n, device=device, dtype=DTYPES[precision])
        torch.mm(a, b)  # warm-up
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / len(sizes):
            sync(device)
            t = time.perf_counter()
            torch.mm(a, b)
            sync(device)
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t))
    return best


def peak_flops(precision: str, device: torch.device) -> tuple[float, str]:
    """(FLOP/s, where the figure comes from): a known GPU's dense spec, else measured."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if precision == "fp32" and torch.backends.cudnn.allow_tf32:
            precision = "tf32"
        for key, peaks in GPU_DENSE_PEAK.items():
            if key in name:
                return peaks[precision], f"{name} dense {precision} spec"
    return measured_peak_flops(precision, device), "measured: best large matmul"


def peak_memory_mb(device: torch.device) -> float:
    """The high-water mark so far: GPU memory allocated by torch on CUDA, resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2 ** 20 if sys.platform == "darwin" else rss / 1024


def interleaved_times(loops: dict, steps: int, chunk: int, device: torch.device) -> dict[str, tuple[float, float]]:
    """(wall seconds, process CPU seconds) spent in `steps` steps of each loop, run alternately in
    chunks of `chunk` steps. CPU seconds do not count time spent waiting for a core that another
    process holds, so on a loaded CPU they show what the loop would take on an idle one."""
    wall, cpu = dict.fromkeys(loops, 0.0), dict.fromkeys(loops, 0.0)
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        for name, step in loops.items():
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            for _ in range(n):
                step()
            sync(device)
            wall[name] += time.perf_counter() - t
            cpu[name] += time.process_time() - c
        done += n
    return {name: (wall[name], cpu[name]) for name in loops}


def profile_step(fn, device: torch.device, steps: int = 4, rows: int = 8) -> dict:
    """Where a step's time goes (torch.profiler over `steps` calls): the ops with the most self time
    (CPU time on a CPU, the time of the kernels they launch on a GPU) and, on a GPU, how busy the
    kernels keep it. `device_busy_share` = kernel time / wall time: far below 1, the GPU waits for
    the host to launch work, which is what a CUDA graph removes."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        wall = time.perf_counter() - start
    attr = "self_device_time_total" if gpu else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if not e.key.startswith(("ProfilerStep", "Optimizer.step#"))]
    ops = [e for e in events if e.device_type == DeviceType.CPU]  # on a GPU, kernels are listed beside their ops
    kernels = [e for e in events if e.device_type != DeviceType.CPU]
    total = sum(getattr(e, attr) for e in (kernels if gpu else ops)) or 1
    ops.sort(key=lambda e: getattr(e, attr), reverse=True)
    report = {"top_ops": [{"op": e.key, "ms_per_step": round(getattr(e, attr) / 1000 / steps, 3),
                           "share": round(getattr(e, attr) / total, 3)} for e in ops[:rows]]}
    if gpu:
        report.update(profiled_ms_per_step=round(1000 * wall / steps, 3),
                      kernel_ms_per_step=round(total / 1000 / steps, 3),
                      kernels_per_step=round(sum(e.count for e in kernels) / steps),
                      device_busy_share=round(total / 1e6 / wall, 3))
    return report


# ---------------------------------------------------------------------------- the two loops
def ganforge_loop(config, fraction: float = 1.0):
    """ganforge's training step exactly as `ganforge train` builds it (Trainer.setup in a scratch
    run directory). Returns (trainer, step function, the same step launched op by op, the uint8
    images it trains on). The two steps differ only where the step is replayed as a CUDA graph."""
    from ganforge.data.batches import InMemoryBatches
    from ganforge.errors import ConfigError
    from ganforge.train.trainer import Trainer

    scratch = tempfile.TemporaryDirectory(prefix="ganforge-bench-")
    trainer = Trainer(config.replace(out=scratch.name, quiet=True), overwrite=True)
    trainer.setup()
    trainer.scratch = scratch  # removed with the trainer
    data = getattr(trainer.dataset, "data", None)  # None when streamed from disk
    if data is None and fraction < 1.0:
        raise ConfigError("--fraction needs data held in memory: drop --stream or --fraction")
    if fraction < 1.0:
        data = data[:max(trainer.config.batch, int(len(data) * fraction))]
        trainer.batches = InMemoryBatches(data, trainer.config.batch, trainer.config.seed, trainer.device)
    d_steps = trainer.config.d_steps

    def step():
        return trainer.gan_step([trainer.batches.next() for _ in range(d_steps)])

    def eager_step():
        return trainer.gan_step.eager([trainer.batches.next() for _ in range(d_steps)])

    return trainer, step, eager_step, data


def loading_report(batches, batch: int, steps: int) -> dict:
    """Batches alone, no training: how fast the data path (in memory, or decoding workers) delivers images."""
    batches.next()  # the first batch of a stream waits for its workers to start
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        batches.next()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"source": type(batches).__name__, "img_per_s": round(batch * steps / wall, 1),
            "main_process_cpu_ms_per_batch": round(1000 * cpu / steps, 2)}


def loop_report(name, spent, steps, images_per_step, flops, peak, precision, memory_mb) -> dict:
    wall, cpu = spent
    per_s = steps / wall
    achieved = flops * per_s
    return {"loop": name, "precision": precision, "img_per_s": round(images_per_step * per_s, 1),
            "ms_per_step": round(1000 / per_s, 2), "cpu_ms_per_step": round(1000 * cpu / steps, 2),
            "img_per_cpu_s": round(images_per_step * steps / max(cpu, 1e-9), 1), "gflop_per_step": round(flops / 1e9, 3),
            "achieved_tflop_per_s": round(achieved / 1e12, 4), "peak_tflop_per_s": round(peak / 1e12, 4),
            "utilisation": round(achieved / peak, 4), "peak_memory_mb": round(memory_mb, 1)}


def bench(config, *, steps: int = 20, warmup: int = 3, chunk: int = 2, fraction: float = 1.0,
          classic: bool = True, profile: bool = True) -> dict:
    """Measure ganforge's step (and the classic loop) for `config`; returns the JSON-able report."""
    from ganforge.bench.classic import ClassicLoop

    trainer, step, eager_step, data = ganforge_loop(config, fraction)
    cfg, device = trainer.config, trainer.device
    images_per_step = cfg.batch * cfg.d_steps
    graphs = trainer.gan_step.graph
    for _ in range(max(warmup, graphs.warmup + 1 if graphs else 0)):  # a graph is recorded after its warm-up
        step()
    sync(device)
    flops = count_flops(eager_step)  # a graph replay runs no ops that could be counted
    memory = peak_memory_mb(device)  # before the classic loop allocates its float copy of the data
    loops = {"ganforge": step}
    use_classic = classic and cfg.model == "dcgan" and data is not None and data.dim() == 4
    if use_classic:
        ref = ClassicLoop(data, cfg.batch, latent_dim=cfg.latent_dim, width=cfg.width, seed=cfg.seed, device=device)
        for _ in range(warmup):
            ref.step()
        classic_flops = count_flops(ref.step)
        loops["classic"] = ref.step
    if device.type == "cuda":
        chunk = max(chunk, 10)  # a sync every two steps would leave the GPU idle while the host launches more
    spent = interleaved_times(loops, steps, chunk, device)

    peak, peak_source = peak_flops(cfg.precision, device)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__, "data": cfg.data, "images": len(data) if data is not None else len(trainer.dataset),
        "shape": list(trainer.dataset.shape), "streamed": data is None,
        "model": cfg.model, "batch": cfg.batch, "timed_steps": steps, "warmup_steps": warmup,
        "peak_source": peak_source,
        "ganforge": {**loop_report("ganforge", spent["ganforge"], steps, images_per_step, flops, peak,
                                   cfg.precision, memory),
                     "channels_last": trainer.gan_step.memory_format is torch.channels_last,
                     "compile": cfg.compile, "cuda_graph": bool(graphs and graphs.recorded),
                     "optimizer": _optimizer_mode(trainer.opt_d)},
    }
    if use_classic:
        fp32_peak = peak if cfg.precision == "fp32" else peak_flops("fp32", device)[0]
        report["classic"] = loop_report("classic", spent["classic"], steps, cfg.batch, classic_flops, fp32_peak,
                                        "fp32", peak_memory_mb(device))
        report["classic"]["peak_memory_note"] = "high-water mark of the whole process (both loops)"
        report["speedup"] = round(report["ganforge"]["img_per_s"] / report["classic"]["img_per_s"], 2)
        report["speedup_cpu_time"] = round(report["ganforge"]["img_per_cpu_s"] / report["classic"]["img_per_cpu_s"], 2)
    report["loading"] = loading_report(trainer.batches, trainer.batches.batch_size, max(steps, 20))
    if profile:  # op by op: a replayed graph shows no ops
        report["ganforge"]["profile_eager"] = profile_step(eager_step, device)
    trainer.scratch.cleanup()
    return report


def _optimizer_mode(opt: torch.optim.Optimizer) -> str:
    group = opt.param_groups[0]
    mode = "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for-loop"
    return f"{type(opt).__name__} ({mode})"
