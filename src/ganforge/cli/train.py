"""`ganforge train`: train a GAN and write a run directory."""

from __future__ import annotations

import argparse
import os

from ganforge.cli.options import add_config_flags, config_overrides

# Settings that may change when a run is resumed; the rest would make it a different run.
RESUMABLE = {"steps", "epochs", "quiet", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "device",
             "stream", "workers", "on_divergence", "max_rollbacks", "eval_every", "eval_n",
             "compile", "cuda_graphs"}


def add_parser(sub, name):
    p = sub.add_parser(name, help="train a GAN (default: DCGAN on the built-in digits)",
                       description="Train a GAN. Every setting is a flag here and a key in --config YAML.")
    p.add_argument("--config", metavar="YAML", help="start from this config file (e.g. runs/NAME/config.yaml)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this directory from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory given by --out")
    add_config_flags(p)
    p.set_defaults(handler=run)


def build_config(args: argparse.Namespace):
    from ganforge.config import TrainConfig
    from ganforge.errors import ConfigError

    overrides = config_overrides(args)
    if "steps" in overrides:  # one length wins: the one typed last on top of the file's
        overrides.setdefault("epochs", None)
    elif "epochs" in overrides:
        overrides["steps"] = None
    if args.resume:
        changed = sorted(set(overrides) - RESUMABLE)
        if changed:
            raise ConfigError(f"cannot change {', '.join(changed)} when resuming: a resumed run keeps its settings "
                              f"(only {', '.join(sorted(RESUMABLE))} may change); start a new run instead")
        from pathlib import Path

        from ganforge.checkpoint import refuse_pickle
        refuse_pickle(Path(args.resume))
        if not (Path(args.resume) / "config.yaml").is_file():
            raise ConfigError(f"cannot resume {args.resume}: it is not a run directory (no config.yaml); pass the "
                              f"--out of an earlier `ganforge train`")
        base = TrainConfig.from_run(args.resume).to_dict()
        base["out"] = args.resume
    elif args.config:
        from pathlib import Path

        from ganforge.checkpoint import refuse_pickle
        refuse_pickle(Path(args.config))
        base = TrainConfig.from_yaml(args.config).to_dict()
        if "out" not in overrides:
            base["out"] = None  # a replay writes a new run, never over the one it came from
    else:
        base = {}
    return TrainConfig.from_dict({**base, **overrides})


def run(args: argparse.Namespace) -> int:
    from ganforge.train.trainer import Trainer

    config = build_config(args)
    result = Trainer(config, resume=bool(args.resume), overwrite=args.overwrite).fit()
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
        return 0
    print(f"done: {result.dir} (samples.png, curves.png, metrics.jsonl); "
          f"new samples: ganforge sample {result.dir} --n 64 --out samples.png")
    return 0
