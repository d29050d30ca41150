"""Command-line flags generated from TrainConfig's fields, so flags and YAML keys cannot drift apart."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import fields

from ganforge.config import TrainConfig


def _base_type(annotation):
    hint = typing.get_type_hints(TrainConfig)[annotation]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0]
    return hint


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field. Defaults are suppressed: only flags the user typed override a --config file."""
    group = parser.add_argument_group("training settings (also settable as YAML keys)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = _base_type(f.name)
        if kind is bool:
            group.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=f.metadata["help"])
        else:
            group.add_argument(flag, type=kind, nargs=f.metadata.get("nargs"), default=argparse.SUPPRESS,
                               metavar=f.name.upper(), help=f.metadata["help"])


def config_overrides(args: argparse.Namespace) -> dict:
    """The config fields the user set on the command line."""
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names}


def add_drop_stretched_flag(parser: argparse.ArgumentParser) -> None:
    """`ganforge sample` and `ganforge eval` draw samples the same way."""
    parser.add_argument("--drop-stretched", type=float, default=0.0, metavar="FRACTION",
                        help="drop this fraction of samples, those whose noise G stretches most: the samples between "
                             "the modes it learned (JBTopK, Tanielian et al. 2020; e.g. 0.05; default 0 = keep all). "
                             "Costs one extra pass per noise dimension, at most 16")
