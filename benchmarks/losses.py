"""Every loss, full default run length, on grid25 and on digits: does it train without NaN?

    OMP_NUM_THREADS=1 python benchmarks/losses.py [--data grid25 digits] [--loss ...] [--steps N]

Each run is `ganforge train --data DATA --loss LOSS` with the loss's own default optimiser settings and
the dataset's defaults otherwise (default divergence handling: a NaN stops the run with exit 2). Prints
one JSON line per run, then a summary: the final logged D(x), D(G(z)) and D accuracy, the seconds,
whether every logged value and every weight stayed finite, and for grid25 the modes and % high-quality
samples on 2,500 samples (a Wasserstein critic's losses are not on the minimax scale, so only the
mixtures' own metrics compare across losses).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ganforge import TrainConfig, Trainer  # noqa: E402
from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.losses import LOSSES  # noqa: E402
from ganforge.metrics import evaluate, json_safe  # noqa: E402


def run_one(data: str, loss: str, steps: int | None, root: Path) -> dict:
    out = root / f"{data}-{loss}"
    row = {"data": data, "loss": loss}
    start = time.perf_counter()
    try:
        run = Trainer(TrainConfig(data=data, loss=loss, steps=steps, quiet=True, out=str(out))).fit()
    except GanforgeError as e:  # a divergence stops the run with a message; that is a failure here
        return {**row, "finite": False, "error": str(e), "seconds": round(time.perf_counter() - start, 1)}
    row["seconds"] = round(time.perf_counter() - start, 1)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    values = [v for r in logged for k, v in r.items() if k in ("loss_d", "loss_g", "d_real", "d_fake")]
    weights = [*run.G.parameters(), *(run.G_ema.parameters() if run.G_ema is not None else [])]
    row["steps"] = run.config.steps
    row["finite"] = all(math.isfinite(v) for v in values) and all(torch.isfinite(p).all() for p in weights)
    row.update({k: logged[-1][k] for k in ("d_real", "d_fake", "d_acc")})
    if data in ("grid25", "ring8"):
        r = evaluate(lambda k: run.sample(k, seed=1000), data, n=2500)
        row.update(modes=r["modes"], hq=round(r["hq"], 4), reverse_kl=round(r["reverse_kl"], 4))
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=["grid25", "digits"])
    p.add_argument("--loss", nargs="+", default=sorted(LOSSES), choices=sorted(LOSSES))
    p.add_argument("--steps", type=int, default=None, help="G updates per run (default: the dataset's own)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("ganforge").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganforge-losses-") as root:
        for data in args.data:
            for loss in args.loss:
                rows.append(run_one(data, loss, args.steps, Path(root)))
                print(json.dumps(json_safe(rows[-1])), flush=True)
    print(json.dumps({"runs": len(rows), "all_finite": all(r["finite"] for r in rows),
                      "not_finite": [f"{r['data']}/{r['loss']}" for r in rows if not r["finite"]]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
