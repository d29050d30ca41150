"""`ganforge bench`: training img/s, FLOPs, utilisation and peak memory of ganforge's step and of the
classic pytorch/examples-style loop on the same model, batch and data, printed as JSON."""

from __future__ import annotations

import argparse
import json

from ganforge.config import CUDA_GRAPHS


def add_parser(sub, name):
    p = sub.add_parser(name, help="measure training speed against the classic DCGAN loop (JSON)",
                       description="Time ganforge's training step and the classic loop (sigmoid + BCELoss, fp32, "
                                   "host DataLoader, .item() each step) on the same architecture, batch and data, "
                                   "alternating between them so other load slows both alike. Prints img/s, FLOPs "
                                   "per step, achieved FLOP/s, the peak FLOP/s (measured, or the GPU's dense spec), "
                                   "utilisation, peak memory, the ratio, and the ops that take the step's time.")
    p.add_argument("--data", default="fashion-mnist", help="dataset name or image folder (default fashion-mnist)")
    p.add_argument("--data-dir", default=None, help="folder holding the IDX files for mnist / fashion-mnist")
    p.add_argument("--model", default="dcgan", help="model family (the classic loop runs for dcgan only)")
    p.add_argument("--batch", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--resolution", type=int, default=None, help="square image size (default: the dataset's own)")
    p.add_argument("--precision", default="auto", help="auto (default), fp32, bf16 or fp16 for ganforge's step")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D (compilation is not timed)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--cuda-graphs", default="auto", choices=CUDA_GRAPHS,
                   help="replay ganforge's step as one CUDA graph: auto (where the settings allow it), on or off")
    p.add_argument("--stream", action="store_true",
                   help="read a folder / tar / zip through DataLoader workers instead of memory (no classic loop then)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers with --stream (default: cores, <= 8)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per loop (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per loop first (default 3)")
    p.add_argument("--fraction", type=float, default=1.0,
                   help="train on this share of the dataset (per-step cost must not depend on it)")
    p.add_argument("--no-classic", action="store_true", help="time ganforge's step only")
    p.add_argument("--no-profile", action="store_true", help="skip the per-op breakdown")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ganforge.bench.measure import bench
    from ganforge.config import TrainConfig
    from ganforge.errors import ConfigError

    for name in ("steps", "warmup"):
        if getattr(args, name) < (1 if name == "steps" else 0):
            raise ConfigError(f"--{name} must be at least {1 if name == 'steps' else 0}, got {getattr(args, name)}")
    if not 0 < args.fraction <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], got {args.fraction}")
    config = TrainConfig(data=args.data, data_dir=args.data_dir, model=args.model, batch=args.batch,
                         resolution=args.resolution, precision=args.precision, compile=args.compile,
                         cuda_graphs=args.cuda_graphs, device=args.device, seed=args.seed, steps=1, stream=args.stream,
                         workers=args.workers)
    report = bench(config, steps=args.steps, warmup=args.warmup, fraction=args.fraction,
                   classic=not args.no_classic, profile=not args.no_profile)
    print(json.dumps(report, indent=1))
    return 0
