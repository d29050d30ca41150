"""GPU targets of ganforge (issue 4), measured on one CUDA GPU; prints one JSON document.

  - headline: DCGAN at 64x64 (Fashion-MNIST upscaled), batch 128. ganforge's default step (bf16 autocast,
    channels_last, the data on the GPU as uint8, fused Adam, the whole step replayed as one CUDA graph)
    against the classic pytorch/examples loop with its DataLoader, alternating in one process (target >= 5x);
  - ablations: the same step without the CUDA graph, and in fp32, so each part's share is visible;
  - with --compile: torch.compile fuses the many small kernels (casts, BatchNorm, activations) that
    the graph still runs one after another;
  - utilisation against the GPU's dense bf16 peak (target >= 40%) at batch 128 and at larger batches,
    with the profiler's account of the step launched op by op (kernel time against wall time) saying
    what bounds it;
  - correctness: training runs from one seed with deterministic kernels, op by op and replayed as a
    graph, must end with the same weights (and two op-by-op runs show the floor);
  - end to end: a short `ganforge train` on the GPU with its default settings.

Every measurement runs in its own process and a failure is reported in the JSON instead of stopping
the rest.

    python benchmarks/gpu.py --data-dir DIR [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time


def ganforge(*args: str, timeout: float = 150) -> dict:
    """Run a ganforge command; its JSON output, or what went wrong."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s", "args": list(args)}
    if done.returncode != 0:
        return {"error": done.stderr[-1500:], "args": list(args)}
    try:
        out = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {"stdout": done.stdout[-500:]}
    except json.JSONDecodeError:
        out = {"stdout": done.stdout[-1500:]}
    return {**out, "seconds": round(time.perf_counter() - start, 1)}


def summary(r: dict) -> dict:
    """The figures of one bench report that the targets are about."""
    if "error" in r:
        return r
    g = r["ganforge"]
    row = {"batch": r["batch"], "shape": r["shape"], "precision": g["precision"], "cuda_graph": g["cuda_graph"],
           "ganforge_img_per_s": g["img_per_s"], "ganforge_ms_per_step": g["ms_per_step"],
           "gflop_per_step": g["gflop_per_step"], "achieved_tflop_per_s": g["achieved_tflop_per_s"],
           "utilisation_of_dense_peak": g["utilisation"], "peak_tflop_per_s": g["peak_tflop_per_s"],
           "peak_memory_mb": g["peak_memory_mb"]}
    if "classic" in r:
        row.update(classic_img_per_s=r["classic"]["img_per_s"], classic_ms_per_step=r["classic"]["ms_per_step"],
                   speedup=r["speedup"])
    if "profile_eager" in g:
        p = g["profile_eager"]
        row["eager_profile"] = {k: p.get(k) for k in ("profiled_ms_per_step", "kernel_ms_per_step",
                                                      "kernels_per_step", "device_busy_share")}
        row["eager_profile"]["top_ops"] = [f"{op['op']} {op['ms_per_step']} ms" for op in p["top_ops"][:6]]
    return row


def graph_equivalence(data: list[str], steps: int) -> dict:
    """The same seeded run op by op (twice) and replayed as a CUDA graph, in fp32 with deterministic
    kernels: the graphed run must end where the op-by-op runs end."""
    script = f"""
import json, sys, tempfile, torch
torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
from ganforge import TrainConfig, Trainer
args = {data!r}
kw = dict(data=args[0], data_dir=args[1] if len(args) > 1 else None)
weights, stats = {{}}, {{}}
for name, graphs in (("eager_a", "off"), ("eager_b", "off"), ("graph", "on")):
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(**kw, steps={steps}, precision="fp32", cuda_graphs=graphs, device="cuda", seed=0,
                          out=out, quiet=True, log_every={steps}, sample_every={steps}, checkpoint_every={steps})
        trainer = Trainer(cfg, overwrite=True)
        trainer.fit()
        weights[name] = torch.cat([p.detach().flatten() for p in [*trainer.G.parameters(), *trainer.D.parameters()]])
        last = [json.loads(line) for line in open(out + "/metrics.jsonl")][-1]
        stats[name] = {{k: last[k] for k in ("loss_d", "loss_g", "d_acc")}}
        stats[name]["recorded"] = bool(trainer.gan_step.graph and trainer.gan_step.graph.recorded)
def rel(a, b):
    return float((weights[a] - weights[b]).norm() / weights[b].norm())
print(json.dumps({{"steps": {steps}, "rel_diff_graph_vs_eager": rel("graph", "eager_a"),
                  "rel_diff_eager_vs_eager": rel("eager_b", "eager_a"), "last_metrics": stats}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=150)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def end_to_end(data: list[str], steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        r = ganforge("train", *data, "--steps", str(steps), "--quiet", "--out", f"{tmp}/run", "--log-every", "100")
        if "error" in r:
            return r
        rows = [json.loads(line) for line in open(f"{tmp}/run/metrics.jsonl")]
        sample = ganforge("sample", f"{tmp}/run", "--n", "64", "--out", f"{tmp}/s.png", "--device", "cuda")
        return {"steps": steps, "wall_s": round(time.perf_counter() - start, 1), "img_per_s_logged":
                [row["img_per_s"] for row in rows], "last": {k: rows[-1][k] for k in ("loss_d", "loss_g", "d_acc")},
                "sample_ok": "error" not in sample, **({"sample_error": sample["error"]} if "error" in sample else {})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--steps", type=int, default=200, help="timed steps per loop (default 200)")
    p.add_argument("--batches", type=int, nargs="*", default=[512, 2048], help="larger batches for utilisation")
    p.add_argument("--skip", nargs="*", default=[], help="sections to leave out: headline ablations compile "
                                                         "batches equivalence train")
    args = p.parse_args()
    data = ["--data", args.data] + (["--data-dir", args.data_dir] if args.data_dir else [])
    common = [*data, "--device", "cuda", "--resolution", "64", "--steps", str(args.steps), "--warmup", "10"]
    result: dict = {}

    import torch
    from ganforge.bench.measure import measured_peak_flops
    result["device"] = {"name": torch.cuda.get_device_name(), "torch": torch.__version__,
                        "measured_bf16_matmul_tflop_per_s": round(measured_peak_flops("bf16", torch.device("cuda")) / 1e12, 1)}
    print(json.dumps(result), flush=True)
    if "headline" not in args.skip:
        result["headline_64px_batch128"] = summary(ganforge("bench", *common, "--batch", "128"))
        print(json.dumps(result["headline_64px_batch128"]), flush=True)
    if "ablations" not in args.skip:
        result["no_cuda_graph"] = summary(ganforge("bench", *common, "--batch", "128", "--cuda-graphs", "off",
                                                   "--no-classic"))
        result["fp32_no_cuda_graph"] = summary(ganforge("bench", *common, "--batch", "128", "--cuda-graphs", "off",
                                                        "--precision", "fp32", "--no-classic", "--no-profile"))
        result["fashion_28px_batch64"] = summary(ganforge("bench", *data, "--device", "cuda", "--batch", "64",
                                                          "--steps", str(args.steps), "--warmup", "10"))
        print(json.dumps({k: result[k] for k in ("no_cuda_graph", "fp32_no_cuda_graph", "fashion_28px_batch64")}),
              flush=True)
    if "compile" not in args.skip:  # torch.compile fuses the small kernels the graph still runs one by one
        result["compile_batch128"] = summary(ganforge("bench", *common, "--batch", "128", "--compile", timeout=400))
        result["compile_larger_batch"] = summary(ganforge("bench", *common, "--batch", str(args.batches[-1]),
                                                          "--compile", "--no-classic", "--steps",
                                                          str(max(20, args.steps // 4)), timeout=400))
        print(json.dumps({k: result[k] for k in ("compile_batch128", "compile_larger_batch")}), flush=True)
    if "batches" not in args.skip:
        result["larger_batches"] = [summary(ganforge("bench", *common, "--batch", str(b), "--no-classic",
                                                     "--steps", str(max(20, args.steps // 4))))
                                    for b in args.batches]
        print(json.dumps(result["larger_batches"]), flush=True)
    if "equivalence" not in args.skip:
        result["graph_equivalence"] = graph_equivalence(data[1::2], steps=60)
        print(json.dumps(result["graph_equivalence"]), flush=True)
    if "train" not in args.skip:
        result["train_end_to_end"] = end_to_end(data, steps=1000)
        print(json.dumps(result["train_end_to_end"]), flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
