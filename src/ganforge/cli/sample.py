"""`ganforge sample`: new samples from a trained run, as a PNG grid, a folder of PNGs or a .npy array."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.cli.options import add_drop_stretched_flag


def add_parser(sub, name):
    p = sub.add_parser(name, help="generate samples from a trained run",
                       description="Generate samples from a run's newest checkpoint.")
    p.add_argument("run", metavar="RUN", help="run directory written by `ganforge train`")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", default="samples.png",
                   help="FILE.png (one grid), FILE.npy (uint8 (N,C,H,W) images or float (N,2) points) or a folder "
                        "(one PNG per image)")
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same samples")
    p.add_argument("--interpolate", action="store_true", help="a latent-walk grid: each row walks between two noise vectors")
    p.add_argument("--class", dest="class_", metavar="CLASS", default=None,
                   help="conditional runs: samples of this class only (index or name); by default the grid has "
                        "one row per class")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    add_drop_stretched_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ganforge.errors import ConfigError
    from ganforge.images import save_grid, save_images
    from ganforge.train.run import load_run

    if args.n <= 0:
        raise ConfigError(f"--n must be greater than 0, got {args.n}")
    run_ = load_run(args.run, device=args.device)
    out = Path(args.out)
    if args.class_ is not None:
        run_.class_index(args.class_)  # a clear error for an unconditional run or an unknown class
    if args.interpolate and args.drop_stretched:
        raise ConfigError("--drop-stretched does not apply to --interpolate (a latent walk keeps every step): "
                          "leave out one of them")
    if args.interpolate:
        rows = max(1, min(args.n // 10, 16)) if args.n >= 10 else 1
        samples, nrow = run_.interpolate(rows=rows, steps=10, seed=args.seed, labels=args.class_), 10
    elif run_.conditional and args.class_ is None and out.suffix == ".png":  # one row per class
        labels, nrow = run_.class_rows(args.n)
        samples = run_.sample(len(labels), seed=args.seed, labels=labels, drop_stretched=args.drop_stretched)
    else:
        samples = run_.sample(args.n, seed=args.seed, labels=args.class_, drop_stretched=args.drop_stretched)
        nrow = None
    try:
        if out.suffix == ".npy":
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, samples.numpy())
        elif not run_.is_image:
            from ganforge.plots import plot_points

            if out.suffix != ".png":
                raise ConfigError(f"2-D samples are written as .png (scatter plot) or .npy, not '{out}'")
            plot_points(samples, out, title=f"{len(samples)} samples")
        elif out.suffix == ".png":
            save_grid(samples, out, nrow=nrow)
        elif out.suffix == "":
            save_images(samples, out)
        else:
            raise ConfigError(f"--out must end in .png or .npy, or name a folder, not '{out}'")
    except OSError as e:
        raise ConfigError(f"cannot write {out} ({e.strerror}): choose a writable --out") from None
    print(f"wrote {len(samples)} samples to {out}")
    return 0
