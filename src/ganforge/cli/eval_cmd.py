"""`ganforge eval`: metrics of a trained run's samples, written to RUN/eval.json and printed as JSON."""

from __future__ import annotations

import argparse
import json

from ganforge.cli.options import add_drop_stretched_flag


def add_parser(sub, name):
    p = sub.add_parser(name, help="measure a trained run: modes for 2-D data, FD/KID/coverage for images",
                       description="Evaluate a run's generator against its dataset. 2-D mixtures: modes captured, "
                                   "share of high-quality samples, reverse KL (PacGAN protocol). Images: Fréchet "
                                   "distance, KID, precision/recall, density/coverage and class coverage (and, for a "
                                   "conditional run, class accuracy), in the "
                                   "feature space of the dataset's domain classifier (`ganforge train-classifier`) "
                                   "or of InceptionV3. Writes RUN/eval.json.")
    p.add_argument("run", metavar="RUN", help="run directory written by `ganforge train`")
    p.add_argument("--n", type=int, default=None,
                   help="generated samples (default 10000 for images, 2500 for 2-D points as in PacGAN)")
    p.add_argument("--features", default="classifier",
                   help="feature space for images: classifier (default), inception (needs ganforge[inception]) "
                        "or a classifier .safetensors file")
    p.add_argument("--split", choices=("train", "test"), default="train", help="real images to compare with")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the generated samples")
    p.add_argument("--device", default="cpu", help="cpu or cuda (for the generator)")
    p.add_argument("--checkpoint", default=None,
                   help="best (the best by --eval-every during training), latest (default) or a step number")
    add_drop_stretched_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ganforge.checkpoint import atomic_write
    from ganforge.errors import ConfigError
    from ganforge.metrics import evaluate, json_safe
    from ganforge.train.run import load_run

    if args.n is not None and args.n < 2:
        raise ConfigError(f"--n must be at least 2, got {args.n}")
    run_ = load_run(args.run, device=args.device, checkpoint=args.checkpoint)
    cfg = run_.config
    # a conditional run is sampled for its classes in turn (a balanced set), and scored on them too
    labels_fn = run_.labels_for if run_.conditional else None
    result = evaluate(lambda n: run_.sample(n, seed=args.seed, drop_stretched=args.drop_stretched), cfg.data,
                      data_dir=cfg.data_dir, n=args.n, features=args.features,
                      resolution=getattr(cfg, "resolution", None), split=args.split, labels_fn=labels_fn)
    result = json_safe({"run": str(run_.dir), "checkpoint": args.checkpoint or "latest", "sample_seed": args.seed,
                        "drop_stretched": args.drop_stretched, **result})
    text = json.dumps(result, indent=1)
    out = run_.dir / "eval.json"
    try:
        atomic_write(out, lambda f: f.write(text.encode() + b"\n"))
    except OSError as e:
        raise ConfigError(f"cannot write {out} ({e.strerror}): make the run directory writable") from None
    print(text)
    return 0
