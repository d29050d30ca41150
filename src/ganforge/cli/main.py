"""Entry point: one sub-command per module in this package, each with `add_parser` and `run`.

User mistakes (GanforgeError) become one line on stderr and exit code 2; nothing else is caught,
so real bugs keep their traceback. Training stopped early (TrainingStopped) prints how to continue
and exits 130 after SIGINT, 143 after SIGTERM, 2 after divergence or a failed write.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# command name -> module under ganforge.cli (imported only when that command runs, to keep start-up fast)
COMMANDS = {
    "train": "train",
    "sample": "sample",
    "eval": "eval_cmd",
    "train-classifier": "train_classifier",
    "report": "report",
    "bench": "bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganforge", description="Train and use generative adversarial networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        importlib.import_module(f"ganforge.cli.{module}").add_parser(sub, name)
    return parser


def say(message: str, same_on_every_rank: bool) -> None:
    """Under torchrun every rank fails alike on a bad setting or an agreed stop: rank 0 alone says so.
    Other errors (a file one rank cannot read) may be a rank's own, so those ranks name themselves."""
    rank = os.environ.get("RANK", "0")
    if rank == "0":
        print(message, file=sys.stderr)
    elif not same_on_every_rank:
        print(f"[rank {rank}] {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from ganforge.errors import ConfigError, GanforgeError, TrainingStopped

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except TrainingStopped as e:  # a signal, divergence or a failed write: the message says how to continue
        say(f"ganforge {args.command}: {e}", same_on_every_rank=True)
        return e.exit_code
    except GanforgeError as e:
        say(f"ganforge {args.command}: error: {e}", same_on_every_rank=isinstance(e, ConfigError))
        return 2
    except KeyboardInterrupt:
        print(f"ganforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
