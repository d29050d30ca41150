"""`ganforge report`: one self-contained HTML page about a run (samples, curves, evaluation, config)."""

from __future__ import annotations

import argparse


def add_parser(sub, name):
    p = sub.add_parser(name, help="write RUN/report.html: samples over training, curves, evaluation, config",
                       description="Write a self-contained HTML report of a run (images embedded, no network "
                                   "needed): the evaluation table (eval.json), final samples, training curves, "
                                   "a filmstrip of samples over training and the config.")
    p.add_argument("run", metavar="RUN", help="run directory written by `ganforge train`")
    p.add_argument("--out", default=None, help="where to write the page (default: RUN/report.html)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ganforge.report import build_report

    print(build_report(args.run, args.out))
    return 0
