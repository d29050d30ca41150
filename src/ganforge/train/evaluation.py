"""Evaluation during training (`--eval-every STEPS`): the metrics of `ganforge eval`, measured on the fly.

Every `every` steps G's samples for one fixed noise batch are scored with `ganforge.metrics.evaluate`:
modes / high-quality share / reverse KL on 2,500 points for the 2-D mixtures (cheap), Fréchet distance,
KID, precision / recall and class coverage in the domain classifier's features on 2,000 images (when no
classifier exists for the dataset, image evaluation is skipped with one warning saying how to train one).

The headline numbers go into the metric line of that step as `eval/...` keys, hence into metrics.jsonl,
TensorBoard and the progress bar. The best step by the headline metric (lowest FD for images; most modes,
then highest HQ share for 2-D points) gets a checkpoint that pruning never deletes, named in
`checkpoints/best.json`. The last evaluation, with its protocol, is written to `eval.json`.

Evaluation draws no numbers from the training RNG, so a run with it trains exactly as one without.
"""

from __future__ import annotations

import json
import logging
import math
import time

import torch

from ganforge.checkpoint import BEST, mark_best
from ganforge.train.callbacks import Callback

log = logging.getLogger("ganforge")

IMAGE_EVAL_SAMPLES = 2000
KID_SUBSETS = 20  # not torch-fidelity's 100: a fifth of the cost, a noisier KID (recorded in the protocol)


def headline(result: dict) -> tuple[str, tuple]:
    """(name, key) of the metric that picks the best checkpoint; a larger key is better."""
    if result["kind"] == "points":
        return "modes", (result["modes"], result["hq"])
    return "fd", (-result["fd"],)


def line_values(result: dict) -> dict:
    """The few numbers that go into metrics.jsonl / TensorBoard / the progress bar, as `eval/...` keys."""
    if result["kind"] == "points":
        keys = {"modes": result["modes"], "hq": result["hq"], "reverse_kl": result["reverse_kl"]}
    else:
        keys = {"fd": result["fd"], "kid": result["kid_mean"], "precision": result["precision"],
                "recall": result["recall"]}
        coverage = result.get("class_coverage", {})
        if "classes_covered" in coverage:
            keys["classes"] = coverage["classes_covered"]
    # JSON has no Infinity (reverse KL with no high-quality sample): such values are left out
    return {f"eval/{k}": (round(v, 6) if isinstance(v, float) else v) for k, v in keys.items()
            if not (isinstance(v, float) and not math.isfinite(v))}


class Evaluation(Callback):
    """Must run before MetricsLog: it adds `eval/...` keys to the metric line MetricsLog then writes."""

    def __init__(self, every: int, n: int | None = None):
        self.every, self.n = every, n
        self.best: dict | None = None
        self.last: dict | None = None

    def on_start(self, trainer):
        from ganforge.metrics import POINT_SAMPLES

        ds, cfg = trainer.dataset, trainer.config
        self.enabled = True
        if ds.is_image:
            self.enabled = self._classifier_available(cfg.data)
        n = self.n or (IMAGE_EVAL_SAMPLES if ds.is_image else POINT_SAMPLES)
        g = torch.Generator().manual_seed(cfg.seed + 104_729)  # fixed noise: scores move only because G does
        self.noise = torch.randn(n, trainer.latent_dim, generator=g)
        best_file = trainer.run_dir / "checkpoints" / BEST
        if trainer.step and best_file.is_file():  # resumed: the best so far stays the one to beat
            self.best = json.loads(best_file.read_text())

    @staticmethod
    def _classifier_available(dataset_name: str) -> bool:
        from ganforge.errors import GanforgeError
        from ganforge.metrics import load_classifier

        try:
            with torch.random.fork_rng(devices=[]):  # building the classifier draws from the global RNG
                load_classifier(dataset_name)
            return True
        except GanforgeError as e:
            log.warning(f"--eval-every: skipping image evaluation during training ({e})")
            return False

    def on_metrics(self, trainer, metrics):
        step = metrics["step"]
        if not self.enabled or not (step % self.every == 0 or step == trainer.config.steps):
            return
        result = self.evaluate(trainer)
        metrics.update(line_values(result))
        self.last = {"step": step, **result}
        name, key = headline(result)
        if self.best is None or key > tuple(self.best["key"]):
            self.best = {"step": step, "metric": name, "value": result[name], "key": list(key)}
            trainer.save_checkpoint()  # now, so that best.json never names a checkpoint that is not there
            mark_best(trainer.run_dir / "checkpoints", **self.best)  # pruning keeps the one best.json names

    def evaluate(self, trainer) -> dict:
        from ganforge.metrics import evaluate

        cfg = trainer.config
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # loading a classifier initialises layers from the global RNG
            result = evaluate(lambda n: trainer.generate(self.noise[:n].to(trainer.device)), cfg.data,
                              data_dir=cfg.data_dir, n=len(self.noise),
                              resolution=cfg.resolution if trainer.dataset.is_image else None,
                              kid_subsets=KID_SUBSETS)
        result["seconds"] = round(time.perf_counter() - start, 2)
        return result

    def on_end(self, trainer):
        if not self.enabled or self.last is None:
            return
        from ganforge.checkpoint import atomic_write
        from ganforge.metrics import json_safe

        best = None if self.best is None else {k: v for k, v in self.best.items() if k != "key"}
        result = json_safe({"run": str(trainer.run_dir), "during_training": True, **self.last, "best": best})
        text = json.dumps(result, indent=1).encode() + b"\n"
        atomic_write(trainer.run_dir / "eval.json", lambda f: f.write(text))
