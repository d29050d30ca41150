"""Speed targets of ganforge (issue 4), measured by `ganforge bench`; prints one JSON table.

  - CPU, DCGAN on Fashion-MNIST at 28x28 and 64x64 (upscaled), batch 64: ganforge's step vs the classic
    pytorch/examples loop on the same architecture and data, alternating in one process (target >= 2x);
  - per-step cost on 10% vs 100% of the data (must not grow with the dataset);
  - peak RSS of a short `ganforge train` on Fashion-MNIST (target <= 1.5 GB).

Each measurement runs in its own process. On a shared machine, read `speedup` (wall clock, both loops
slowed alike) next to `speedup_cpu_time` (process CPU time, which waiting for a core does not inflate).

    python benchmarks/speed.py [--steps 12] [--precision auto] [--device auto] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile


def ganforge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, check=True)


def bench(common: list[str], *extra: str) -> dict:
    return json.loads(ganforge("bench", *common, *extra).stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12, help="timed steps per loop and measurement")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    common = ["--data", "fashion-mnist", "--batch", str(args.batch), "--steps", str(args.steps),
              "--precision", args.precision, "--device", args.device, "--warmup", "2"]
    if args.data_dir:
        common += ["--data-dir", args.data_dir]

    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--data-dir", args.data_dir] if args.data_dir else []
        ganforge("train", "--data", "fashion-mnist", "--steps", "20", "--quiet", "--precision", args.precision,
                 "--device", args.device, "--out", f"{tmp}/run", "--log-every", "10", *extra)
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux; the only child so far
    memory = {"peak_rss_mb_training_fashion_mnist": round(rss_mb, 1), "target_mb": 1536,
              "note": "RSS high-water mark of the training process"}


    rows = []
    for resolution in (28, 64):
        r = bench(common, "--resolution", str(resolution))
        g, c = r["ganforge"], r["classic"]
        rows.append({"resolution": resolution, "device": r["device"], "precision": g["precision"],
                     "ganforge_img_per_s": g["img_per_s"], "classic_img_per_s": c["img_per_s"],
                     "speedup": r["speedup"], "speedup_cpu_time": r["speedup_cpu_time"], "target": 2.0,
                     "gflop_per_step": g["gflop_per_step"], "ganforge_utilisation": g["utilisation"],
                     "classic_utilisation": c["utilisation"], "peak_tflop_per_s": g["peak_tflop_per_s"],
                     "top_ops": [f"{op['op']} {op['share']:.0%}" for op in g["profile_eager"]["top_ops"][:4]], "bench": r})

    small = bench(common, "--resolution", "28", "--fraction", "0.1", "--no-classic", "--no-profile")
    full = bench(common, "--resolution", "28", "--no-classic", "--no-profile")
    scaling = {"images_small": small["images"], "images_full": full["images"],
               "cpu_ms_per_step_small": small["ganforge"]["cpu_ms_per_step"],
               "cpu_ms_per_step_full": full["ganforge"]["cpu_ms_per_step"],
               "ratio_full_to_small": round(full["ganforge"]["cpu_ms_per_step"] / small["ganforge"]["cpu_ms_per_step"], 3)}

    print(json.dumps({"speed": rows, "per_step_vs_dataset_size": scaling, "memory": memory}, indent=1))


if __name__ == "__main__":
    main()
