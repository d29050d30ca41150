"""Streaming throughput and memory as the dataset grows: img/s and peak RSS at 20k and 200k images.

    PYTHONPATH=src python benchmarks/streaming.py [--sizes 20000 200000] [--workers 2] [--root /tmp/ganforge-stream]

Generates folders of N small PNGs once (32x32 RGB, numpy + Pillow, in parallel) under --root, then measures
each size in a fresh subprocess (so peak RSS is that size's alone): index the folder, stream --batches
batches through DataLoader workers, report img/s and ru_maxrss of the training process and of its
workers. Memory should stay flat as N grows: only the index grows (a few bytes per image), never the
decoded images, which in memory would take N x 3 x 32 x 32 bytes. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def write_images(job: tuple[str, int, int]) -> int:
    import numpy as np
    from PIL import Image

    folder, start, stop = job
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        # smooth colour blobs plus noise: compresses like small natural images, not like pure noise
        low = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(low).resize((32, 32), Image.Resampling.BILINEAR), dtype=np.int16)
        image = np.clip(image + rng.integers(-12, 13, size=image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(f"{folder}/{i:07d}.png", compress_level=1)
    return stop - start


def ensure_folder(root: Path, n: int, processes: int) -> dict:
    folder = root / f"images-{n}"
    done = folder / ".complete"
    if done.is_file():
        return {"folder": str(folder), "generated_s": None, "reused": True}
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs = [(str(folder), s, min(n, s + 2000)) for s in range(0, n, 2000)]
    with multiprocessing.Pool(processes) as pool:
        assert sum(pool.imap_unordered(write_images, jobs)) == n
    done.write_text(str(n))
    return {"folder": str(folder), "generated_s": round(time.perf_counter() - t0, 1), "reused": False}


def measure(folder: str, workers: int, batches: int, device: str = "cpu") -> dict:
    """Run in a fresh process: throughput and peak memory of streaming one folder."""
    import torch

    from ganforge.data.streaming import streaming_throughput

    torch.set_num_threads(1)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after importing torch
    result = streaming_throughput(folder, resolution=32, batch=64, workers=workers, batches=batches, device=device)
    import gc

    gc.collect()  # the DataLoader's workers exit here, so their peak is in RUSAGE_CHILDREN
    result.update({
        "rss_after_import_mb": round(baseline / 1024, 1),
        "peak_rss_main_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "in_memory_would_need_mb": round(result["images"] * 3 * 32 * 32 / 2**20, 1),
    })
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=200, help="batches of 64 timed per size")
    p.add_argument("--root", default="/tmp/ganforge-stream")
    p.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2)), help="processes generating images")
    p.add_argument("--device", default="cpu", help="where batches go (cuda: pinned memory, non-blocking copies)")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers, args.batches, args.device)))
        return

    report = {"benchmark": "streaming", "image": "32x32 RGB png", "batch": 64, "workers": args.workers, "device": args.device,
              "cpu_cores": os.cpu_count(), "sizes": {}}
    for n in args.sizes:
        made = ensure_folder(Path(args.root), n, args.processes)
        run = subprocess.run([sys.executable, __file__, "--measure", made["folder"], "--workers", str(args.workers),
                              "--batches", str(args.batches), "--device", args.device], capture_output=True, text=True,
                             env=os.environ)
        if run.returncode:
            sys.exit(run.stderr)
        report["sizes"][str(n)] = {**json.loads(run.stdout.splitlines()[-1]), "generate_s": made["generated_s"]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
