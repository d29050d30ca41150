"""What happens around training, each in its own small object: metric logs, sample grids, the
progress display. Callbacks see the trainer's models and counters, never its gradients or optimisers.

A callback may define on_start(trainer), on_metrics(trainer, metrics), on_step(trainer), on_end(trainer).
"""

from __future__ import annotations

import json
import logging
import time

import torch

log = logging.getLogger("ganforge")


class Callback:
    def on_start(self, trainer) -> None: ...

    def on_metrics(self, trainer, metrics: dict) -> None: ...

    def on_step(self, trainer) -> None: ...

    def on_end(self, trainer) -> None: ...


class MetricsLog(Callback):
    """Appends one JSON line per log interval to metrics.jsonl, and the same scalars to TensorBoard."""

    def on_start(self, trainer):
        from torch.utils.tensorboard import SummaryWriter

        self.file = open(trainer.run_dir / "metrics.jsonl", "a")
        self.tb = SummaryWriter(str(trainer.run_dir / "tb"), purge_step=trainer.step + 1 if trainer.step else None)
        trainer.tensorboard = self.tb

    def on_metrics(self, trainer, metrics):
        self.file.write(json.dumps(metrics) + "\n")
        self.file.flush()
        for key, value in metrics.items():
            if key not in ("step", "time") and isinstance(value, (int, float)):
                self.tb.add_scalar(key, value, metrics["step"])

    def on_end(self, trainer):
        self.file.close()
        self.tb.close()


class SampleGrids(Callback):
    """Samples from one fixed noise batch every `every` steps, so the same images can be watched as
    they evolve: PNG grids for images (one row per class for a conditional run), scatter plots over the
    true density for 2-D points."""

    def __init__(self, every: int, count: int | None = None):
        self.every, self.count = every, count

    def on_start(self, trainer):
        self.folder = trainer.run_dir / "samples"
        self.folder.mkdir(exist_ok=True)
        n = self.count or (64 if trainer.dataset.is_image else 2500)
        self.labels, self.nrow = None, None
        if trainer.classes:
            from ganforge.train.run import class_rows

            self.labels, self.nrow = class_rows(len(trainer.classes), n)
            n = len(self.labels)
        g = torch.Generator().manual_seed(trainer.config.seed + 7919)  # own generator: the training RNG is untouched
        self.noise = torch.randn(n, trainer.latent_dim, generator=g).to(trainer.device)
        if trainer.step == 0:
            self.save(trainer)

    def on_step(self, trainer):
        if trainer.step % self.every == 0:
            self.save(trainer)

    def save(self, trainer):
        fake = trainer.generate(self.noise, self.labels)
        path = self.folder / f"step-{trainer.step:08d}.png"
        if trainer.dataset.is_image:
            from ganforge.images import make_grid, save_grid

            save_grid(fake, path, nrow=self.nrow)
            if getattr(trainer, "tensorboard", None) is not None:
                trainer.tensorboard.add_image("samples", make_grid(fake, self.nrow), trainer.step, dataformats="HWC")
        else:
            from ganforge.plots import plot_points

            ds = trainer.dataset
            plot_points(fake, path, real=ds.data[:5000], modes=ds.modes, title=f"step {trainer.step}")


class Progress(Callback):
    """A progress bar (or, with quiet, plain log lines) showing step, img/s, losses and D accuracy."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar = None

    def on_start(self, trainer):
        if not self.quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.config.steps, initial=trainer.step, unit="step", dynamic_ncols=True)
        self.last = trainer.step

    def on_metrics(self, trainer, m):
        shown = {"img/s": f"{m['img_per_s']:.0f}", "D": f"{m['loss_d']:.3f}", "G": f"{m['loss_g']:.3f}",
                 "acc": f"{m['d_acc']:.2f}"}
        shown.update({k.split("/")[-1]: (f"{v:.3g}" if isinstance(v, float) else v)
                      for k, v in m.items() if k.startswith("eval/")})
        if self.bar is not None:
            self.bar.update(m["step"] - self.last)
            self.bar.set_postfix(shown, refresh=False)
        else:
            log.info("step %d/%d  %s", m["step"], trainer.config.steps, "  ".join(f"{k} {v}" for k, v in shown.items()))
        self.last = m["step"]

    def on_end(self, trainer):
        if self.bar is not None:
            self.bar.close()


class Timer:
    """Wall-clock throughput between metric lines."""

    def __init__(self):
        self.t = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        return dt
