"""Sample quality of ganforge's headline configurations, printed as one JSON document.

  python benchmarks/quality.py                    # the full table (about 35 CPU-minutes with the defaults)
  OMP_NUM_THREADS=1 python benchmarks/quality.py --skip fashion --points grid25   # grid25, 5 seeds
  python benchmarks/quality.py --seeds 1 --budget 60 --n 2000 --points-steps 1000   # a smoke run
  OMP_NUM_THREADS=1 python benchmarks/quality.py --skip points --skip precision --fashion-seeds 0 1 2

1. 2-D mixtures (grid25, ring8), ganforge's default configuration, one run per seed: modes captured,
   % high-quality samples and reverse KL on 2,500 samples (the PacGAN / VEEGAN protocol), and the
   training seconds; per mixture the mean, the worst seed and whether the worst seed meets the
   targets (grid25: 25/25 modes, >= 97% high quality, reverse KL <= 0.02, <= 60 s; ring8: 8/8, >= 97%).
   PacGAN's anchors: grid25 vanilla GAN ~17 modes, PacGAN4 24.8 / 93.6% / 0.04. Each run is also
   evaluated with `--drop-stretched` (default 0.05) of its samples dropped, those G stretches most
   (`Run.sample(drop_stretched=...)`), summarised apart as `summary_drop_stretched`; `summary` is
   plain sampling, as the papers draw.
2. Fashion-MNIST after a fixed budget of training time, for ganforge's default configuration and for
   the classic DCGAN reference loop (pytorch/examples `dcgan/main.py` style, `ganforge.bench.classic`,
   the same DCGAN networks) side by side: classifier FD, KID and class coverage on `--n` samples.
   The budget counts training only (not data loading or evaluation) on `--clock`: `cpu` = this
   process's CPU time (fair on a shared machine; with --threads 1 a CPU-second is a core-second), or
   `wall`. One such pair per `--fashion-seeds` seed (one run's FD moves by about +-10% with the seed):
   each seed's FD ratio ganforge / classic, their mean and the worst, the 0.3x target checked on the
   mean. Needs the Fashion-MNIST IDX files and its domain classifier (`ganforge train-classifier
   --data fashion-mnist`); the section says why when it is skipped.
3. Precision on Fashion-MNIST (`--precision-data`): the default configuration trained for `--precision-steps` steps with
   `--precision auto` (bf16 where the hardware runs it fast) and with fp32, same seed, same samples
   asked for: does the fast path cost quality? The FD of each and their ratio.

The classifier FDs compare these runs with each other, not with published (Inception) FIDs.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ganforge import TrainConfig, Trainer  # noqa: E402
from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.metrics import evaluate, json_safe  # noqa: E402
from ganforge.train.callbacks import Callback  # noqa: E402

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


class Budget(Callback):
    """Ends training once `seconds` of `clock` have passed since training started (benchmark use only)."""

    def __init__(self, seconds: float, clock):
        self.seconds, self.clock = seconds, clock

    def on_start(self, trainer):
        self.start, self.wall = self.clock(), time.perf_counter()

    def on_step(self, trainer):
        if self.clock() - self.start >= self.seconds:
            trainer.config.steps = trainer.step  # the loop ends after this step; the Run stays in memory, unsaved

    def on_end(self, trainer):
        self.wall = time.perf_counter() - self.wall


# Issue targets for the 2-D mixtures, checked against the worst seed. PacGAN4 published 24.8 / 93.6% / 0.04.
POINT_TARGETS = {
    "grid25": {"modes": 25, "hq": 0.97, "reverse_kl": 0.02, "seconds": 60.0},
    "ring8": {"modes": 8, "hq": 0.97},
}


def points_table(names, seeds, steps, n, drop: float, out_dir: Path) -> dict:
    rows = []
    for name in names:
        for seed in seeds:
            cfg = TrainConfig(data=name, seed=seed, steps=steps, quiet=True, out=str(out_dir / f"{name}-{seed}"))
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            run = Trainer(cfg).fit()
            wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
            rows.append({"data": name, "seed": seed, "steps": run.config.steps,
                         **mode_result(evaluate(lambda k: run.sample(k, seed=1000 + seed), name, n=n)),
                         "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)})
            if drop:
                start = time.perf_counter()
                r = evaluate(lambda k: run.sample(k, seed=1000 + seed, drop_stretched=drop), name, n=n)
                seconds = round(time.perf_counter() - start, 2)
                rows[-1]["drop_stretched"] = {**mode_result(r), "sampling_seconds": seconds}
            print(f"{name} seed {seed}: {rows[-1]}", file=sys.stderr)
    out = {"protocol": {"n_fake": n, "high_quality": "< 3 std from the nearest mode",
                        "config": "ganforge defaults for the dataset (mlp, nonsaturating)", "drop_stretched": drop},
           "runs": rows, "summary": {name: summarise_points([r for r in rows if r["data"] == name], name)
                                     for name in names}}
    if drop:  # the same runs, their samples drawn dropping the most stretched
        out["summary_drop_stretched"] = {
            name: summarise_points([{**r, **r["drop_stretched"]} for r in rows if r["data"] == name], name)
            for name in names}
    return out


def mode_result(r: dict) -> dict:
    return {"modes": r["modes"], "total_modes": r["total_modes"], "hq": round(r["hq"], 4),
            "reverse_kl": round(r["reverse_kl"], 4)}


def summarise_points(rows: list[dict], name: str) -> dict:
    """Mean and std over the seeds, the worst seed, and whether the worst seed meets every target."""
    out = {"seeds": len(rows)}
    for key in ("modes", "hq", "reverse_kl", "seconds"):
        vals = [r[key] for r in rows if math.isfinite(r[key])]  # reverse KL is inf with no HQ sample
        out[key] = round(statistics.fmean(vals), 4) if vals else None
        out[f"{key}_std"] = round(statistics.stdev(vals), 4) if len(vals) > 1 else None
    lower_is_better = ("reverse_kl", "seconds")
    worst = {key: (max if key in lower_is_better else min)(r[key] for r in rows)
             for key in ("modes", "hq", "reverse_kl", "seconds")}
    target = POINT_TARGETS.get(name, {})
    out["worst"], out["target"] = worst, target
    out["all_targets_met"] = all(worst[k] <= v if k in lower_is_better else worst[k] >= v for k, v in target.items())
    return out


def image_result(r: dict) -> dict:
    cov = r.get("class_coverage", {})
    return {"fd": round(r["fd"], 4), "kid": round(r["kid_mean"], 5), "kid_std": round(r["kid_std"], 5),
            "precision": round(r["precision"], 4), "recall": round(r["recall"], 4),
            "classes_covered": cov.get("classes_covered"), "class_kl": cov.get("kl") and round(cov["kl"], 4),
            "mean_confidence": cov.get("mean_confidence") and round(cov["mean_confidence"], 4)}


def classic_sampler(G, latent_dim: int, seed: int):
    from ganforge.data.dataset import to_uint8

    @torch.no_grad()
    def sample(n):
        z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
        G.eval()
        return to_uint8(torch.cat([G(chunk) for chunk in z.split(500)]))

    return sample


FASHION_TARGET = 0.3  # issue target: ganforge's FD at most 0.3x the classic loop's, same budget


def fashion_table(budget: float, clock_name: str, n: int, seeds: list[int], out_dir: Path) -> dict:
    from ganforge.data import load_dataset
    from ganforge.metrics import load_classifier

    try:
        load_classifier("fashion-mnist")
        data = load_dataset("fashion-mnist")
    except GanforgeError as e:
        return {"skipped": str(e)}
    clock = CLOCKS[clock_name]
    runs = [fashion_pair(data, budget, clock, n, seed, out_dir / f"seed-{seed}") for seed in seeds]
    return {"budget_s": budget, "clock": clock_name, "protocol": runs[0]["protocol"], **summarise_fashion(runs)}


def summarise_fashion(runs: list[dict]) -> dict:
    """Each seed's pair without the shared protocol, the FD ratios' mean and worst, and the target on the mean."""
    ratios = [r["fd_ratio"] for r in runs]
    mean = statistics.fmean(ratios)
    return {"seeds": [r["seed"] for r in runs], "runs": [{k: v for k, v in r.items() if k != "protocol"} for r in runs],
            "fd_ratio_mean": round(mean, 4), "fd_ratio_worst": max(ratios), "target": FASHION_TARGET,
            "target_met_by_mean": mean <= FASHION_TARGET}


def fashion_pair(data, budget: float, clock, n: int, seed: int, out_dir: Path) -> dict:
    """ganforge's default configuration and the classic loop, each trained for `budget` of `clock`, one seed."""
    result = {"seed": seed}
    # ganforge's default configuration for the dataset, stopped by the budget
    cfg = TrainConfig(data="fashion-mnist", seed=seed, steps=10**8, quiet=True, out=str(out_dir / "ganforge"))
    budget_cb = Budget(budget, clock)
    run = Trainer(cfg, callbacks=[budget_cb]).fit()
    r = evaluate(lambda k: run.sample(k, seed=1000 + seed), "fashion-mnist", n=n)
    result["ganforge"] = {"steps": run.config.steps, "images_seen": run.config.steps * run.config.batch,
                          "train_wall_s": round(budget_cb.wall, 1), **image_result(r)}
    result["protocol"] = r["protocol"]
    print(f"fashion-mnist seed {seed} ganforge: {result['ganforge']}", file=sys.stderr)

    # the classic loop (batch 64, Adam 2e-4, no EMA), with the run's latent size, same budget
    from ganforge.bench.classic import ClassicLoop

    loop = ClassicLoop(data.data, 64, latent_dim=run.config.latent_dim, seed=seed)
    steps, start, wall = 0, clock(), time.perf_counter()
    while clock() - start < budget:
        loop.step()
        steps += 1
    wall = time.perf_counter() - wall
    r = evaluate(classic_sampler(loop.G, run.config.latent_dim, 1000 + seed), "fashion-mnist", n=n)
    result["classic"] = {"steps": steps, "images_seen": steps * loop.batch, "train_wall_s": round(wall, 1),
                         **image_result(r)}
    print(f"fashion-mnist seed {seed} classic: {result['classic']}", file=sys.stderr)
    result["fd_ratio"] = round(result["ganforge"]["fd"] / result["classic"]["fd"], 4)
    return result


def precision_table(data: str, steps: int, n: int, seed: int, out_dir: Path) -> dict:
    from ganforge.metrics import load_classifier

    try:
        load_classifier(data)
    except GanforgeError as e:
        return {"skipped": str(e)}
    result = {"data": data, "steps": steps, "seed": seed}
    for precision in ("auto", "fp32"):
        cfg = TrainConfig(data=data, seed=seed, steps=steps, precision=precision, quiet=True,
                          out=str(out_dir / f"{data}-{precision}"))
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        run = Trainer(cfg).fit()
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        r = evaluate(lambda k: run.sample(k, seed=1000 + seed), data, n=n)
        result[precision] = {"resolved": run.config.precision, "seconds": round(wall, 1),
                             "cpu_seconds": round(cpu, 1), **image_result(r)}
        print(f"{data} {precision}: {result[precision]}", file=sys.stderr)
    result["fd_ratio_auto_to_fp32"] = round(result["auto"]["fd"] / result["fp32"]["fd"], 3)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds per 2-D mixture (default 5)")
    p.add_argument("--points-steps", type=int, default=None,
                   help="steps per 2-D run (default: the preset, 12000)")
    p.add_argument("--fashion-seeds", type=int, nargs="+", default=[0],
                   help="seeds of the Fashion-MNIST comparison, each a ganforge run and a classic run (default 0)")
    p.add_argument("--budget", type=float, default=600, help="training seconds per Fashion-MNIST run (default 600)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="what the budget counts (default cpu)")
    p.add_argument("--n", type=int, default=10_000, help="generated images per Fashion-MNIST evaluation")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--points", nargs="+", choices=sorted(POINT_TARGETS), default=["grid25", "ring8"],
                   help="which 2-D mixtures to run (default both)")
    p.add_argument("--drop-stretched", type=float, default=0.05,
                   help="also evaluate each 2-D run with this fraction of its most stretched samples dropped (0 = not)")
    p.add_argument("--precision-steps", type=int, default=3000,
                   help="steps per run of the precision comparison (default 3000)")
    p.add_argument("--precision-data", default="fashion-mnist", help="dataset of the precision comparison")
    p.add_argument("--skip", choices=("points", "fashion", "precision"), action="append", default=[], help="leave out a section")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    out = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                       "torch": torch.__version__, "python": platform.python_version()},
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="ganforge-quality-") as tmp:
        tmp = Path(tmp)
        if "points" not in args.skip:
            out["points"] = points_table(args.points, range(args.seeds), args.points_steps, 2500,
                                         args.drop_stretched, tmp)
        if "fashion" not in args.skip:
            out["fashion_mnist"] = fashion_table(args.budget, args.clock, args.n, args.fashion_seeds, tmp)
        if "precision" not in args.skip:
            out["precision"] = precision_table(args.precision_data, args.precision_steps, args.n, 0, tmp)
    print(json.dumps(json_safe(out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
