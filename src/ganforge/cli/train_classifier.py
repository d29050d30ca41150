"""`ganforge train-classifier`: train the domain classifier that `ganforge eval` uses as its feature space."""

from __future__ import annotations

import argparse
import json


def add_parser(sub, name):
    p = sub.add_parser(name, help="train the domain classifier used by `ganforge eval`",
                       description="Train a small CNN on a labelled image dataset (its penultimate layer is the "
                                   "feature space of the Fréchet distance / KID of `ganforge eval`; its predictions "
                                   "give class coverage). Prints a JSON summary with the test accuracy.")
    p.add_argument("--data", required=True, help="labelled image dataset: fashion-mnist, mnist, digits or a folder "
                                                 "with one sub-folder per class")
    p.add_argument("--data-dir", default=None, help="folder holding the IDX files for mnist / fashion-mnist")
    p.add_argument("--epochs", type=int, default=None,
                   help="passes over the training set (default: fashion-mnist 3, mnist 2, digits 40)")
    p.add_argument("--out", default=None, help="FILE.safetensors (default: $GANFORGE_CACHE/classifiers/DATA.safetensors, "
                                              "~/.cache/ganforge when unset; where `ganforge eval` looks)")
    p.add_argument("--resolution", type=int, default=None, help="train at this square size (default: the dataset's own)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same classifier")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ganforge.errors import ConfigError
    from ganforge.metrics.classifier import train_classifier

    if args.resolution is not None and not 4 <= args.resolution <= 512:
        raise ConfigError(f"--resolution must be between 4 and 512, got {args.resolution}")
    try:
        result = train_classifier(args.data, data_dir=args.data_dir, out=args.out, epochs=args.epochs, seed=args.seed,
                                  resolution=args.resolution)
    except OSError as e:
        raise ConfigError(f"cannot write the classifier ({e.strerror}: {e.filename}): choose a writable --out") from None
    print(json.dumps(result, indent=1))
    return 0
