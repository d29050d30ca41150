"""The outer loop: set up data, models and optimisers from a config, run `GANStep` for the configured
number of steps, hand metrics to callbacks, write checkpoints, and return a `Run`.

Read `fit()` top to bottom: it is the whole of training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.errors import ConfigError
from ganforge.train.callbacks import Callback, MetricsLog, Progress, SampleGrids
from ganforge.train.run import Run
from ganforge.train.step import STATS, GANStep

log = logging.getLogger("ganforge")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no GPU: use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(name: str, params, lr: float, betas) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas))


class Trainer:
    """Trains a GAN as the config says. Pass `generator` / `discriminator` to train your own modules:
    G must map noise (B, latent_dim) to samples shaped like the data in [-1, 1] (images) and D must
    map samples to one logit each, shape (B,) or (B, 1)."""

    def __init__(self, config: TrainConfig, generator: nn.Module | None = None,
                 discriminator: nn.Module | None = None, *, callbacks: list[Callback] | None = None,
                 resume: bool = False, overwrite: bool = False):
        self.config = config
        self.G, self.D = generator, discriminator
        if (self.G is None) != (self.D is None):
            raise ConfigError("pass both generator and discriminator, or neither")
        self.extra_callbacks = callbacks or []
        self.resume, self.overwrite = resume, overwrite
        self.step = 0

    # ------------------------------------------------------------------ the loop
    def fit(self) -> Run:
        self.setup()
        cfg = self.config
        callbacks = [MetricsLog(), SampleGrids(cfg.sample_every), *self.extra_callbacks, Progress(cfg.quiet)]
        for cb in callbacks:
            cb.on_start(self)

        running, count = torch.zeros(len(STATS), device=self.device), 0
        lap, lap_step = time.perf_counter(), self.step
        while self.step < cfg.steps:
            real_batches, labels = zip(*(self.batches.next() for _ in range(cfg.d_steps)))  # labels: None unless conditional
            with self.precision():
                stats = self.gan_step(list(real_batches), list(labels))
            running += stats
            count += 1
            self.step += 1

            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                values = (running / count).tolist()  # the one host sync of the interval
                now = time.perf_counter()
                images = (self.step - lap_step) * cfg.batch * cfg.d_steps
                metrics = {"step": self.step, "epoch": round(self.batches.epochs_done, 4),
                           **{k: round(v, 6) for k, v in zip(STATS, values)},
                           "img_per_s": round(images / (now - lap), 1), "time": round(time.time(), 3)}
                running.zero_()
                count, lap, lap_step = 0, now, self.step
                for cb in callbacks:
                    cb.on_metrics(self, metrics)
            for cb in callbacks:
                cb.on_step(self)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save_checkpoint()

        for cb in callbacks:
            cb.on_end(self)
        self.finish()
        return Run(self.run_dir, self.config, self.G, self.dataset.shape, self.device, classes=self.classes)

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        from ganforge.data import load_dataset
        from ganforge.data.batches import InMemoryBatches
        from ganforge.losses import get_loss

        cfg = self.config.validate()
        self.device = pick_device(cfg.device)
        self.dataset = load_dataset(cfg.data, data_dir=cfg.data_dir, resolution=cfg.resolution or cfg.preset().get("resolution"))
        cfg = self.config = cfg.resolve(len(self.dataset), self.dataset.shape)
        self.run_dir = self.prepare_run_dir()
        seed_everything(cfg.seed)
        if cfg.conditional:
            self.dataset.require_labels()
        self.classes = list(self.dataset.classes) if cfg.conditional else None  # what G and D are conditioned on
        num_classes = len(self.classes) if self.classes else 0

        if self.G is not None:
            self.config = cfg = cfg.replace(model="custom")
        else:
            from ganforge.models import build
            self.G, self.D = build(cfg.model, self.dataset.shape, latent_dim=cfg.latent_dim, width=cfg.width,
                                   d_norm=cfg.d_norm, num_classes=num_classes)
        self.latent_dim = getattr(self.G, "latent_dim", cfg.latent_dim)
        self.G.to(self.device).train()
        self.D.to(self.device).train()
        self.opt_g = make_optimizer(cfg.optimizer, self.G.parameters(), cfg.lr, cfg.betas)
        self.opt_d = make_optimizer(cfg.optimizer, self.D.parameters(), cfg.lr_d, cfg.betas)
        self.loss = get_loss(cfg.loss)
        self.gan_step = GANStep(self.G, _Flatten(self.D), self.opt_g, self.opt_d, self.loss, self.latent_dim,
                                g_steps=cfg.g_steps)
        self.batches = InMemoryBatches(self.dataset.data, cfg.batch, cfg.seed, self.device,
                                       labels=self.dataset.labels if cfg.conditional else None)
        if self.resume:
            self.load_checkpoint()
        else:
            cfg.save(self.run_dir / "config.yaml")
        log.info("training %s on %s (%d samples, shape %s) for %d steps on %s -> %s", cfg.model,
                 cfg.data, len(self.dataset), tuple(self.dataset.shape), cfg.steps, self.device, self.run_dir)

    def prepare_run_dir(self) -> Path:
        cfg = self.config
        if cfg.out is None:
            name = Path(cfg.data).name if Path(cfg.data).is_dir() else cfg.data
            cfg.out = str(Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir = Path(cfg.out)
        exists = run_dir.exists() and any(run_dir.iterdir())
        if self.resume:
            if not (run_dir / "config.yaml").is_file():
                raise ConfigError(f"cannot resume {run_dir}: it holds no config.yaml; pass a run directory")
        elif exists:
            if not self.overwrite:
                raise ConfigError(f"run directory {run_dir} already exists: pass --resume to continue it, "
                                  f"--overwrite to replace it, or another --out")
            if not (run_dir / "config.yaml").is_file():
                raise ConfigError(f"{run_dir} is not a ganforge run (no config.yaml), so --overwrite will not "
                                  f"delete it: choose another --out")
            shutil.rmtree(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            probe = run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"cannot write to run directory {run_dir} ({e.strerror}): choose a writable --out") from None
        return run_dir

    def precision(self):
        """Mixed precision wraps the step from outside; the step itself never branches on it."""
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # ------------------------------------------------------------------ sampling
    def generate(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G's samples for the given noise (and classes, when conditional), in evaluation mode: uint8 images
        or float points, on the CPU."""
        from ganforge.data.dataset import to_uint8
        from ganforge.train.run import generate

        out = generate(self.G, noise, labels, self.device)
        return to_uint8(out) if self.dataset.is_image else out

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        from ganforge.checkpoint import flatten_module, flatten_optimizer, save_checkpoint

        tensors = {**flatten_module("G", self.G), **flatten_module("D", self.D)}
        opt_meta = {}
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            t, m = flatten_optimizer(name, opt)
            tensors.update(t)
            opt_meta[name] = m
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        np_state = np.random.get_state()
        meta = {"data_shape": list(self.dataset.shape), "latent_dim": self.latent_dim, "classes": self.classes,
                "optimizers": opt_meta,
                "batches": self.batches.state_dict(), "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                "python_rng": _jsonable(random.getstate())}
        save_checkpoint(self.run_dir / "checkpoints", self.step, tensors, meta, keep=self.config.keep_checkpoints)

    def load_checkpoint(self) -> None:
        from ganforge.checkpoint import load_checkpoint, load_module, load_optimizer

        tensors, meta = load_checkpoint(self.run_dir / "checkpoints")
        load_module("G", self.G, tensors)
        load_module("D", self.D, tensors)
        load_optimizer("opt_g", self.opt_g, tensors, meta["optimizers"]["opt_g"])
        load_optimizer("opt_d", self.opt_d, tensors, meta["optimizers"]["opt_d"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        kind, keys, *rest = meta["numpy_rng"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
        random.setstate(_tuplify(meta["python_rng"]))
        self.batches.load_state_dict(meta["batches"])
        self.step = meta["step"]
        log.info("resumed %s at step %d", self.run_dir, self.step)

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        from ganforge.plots import plot_curves

        rows = [json.loads(line) for line in (self.run_dir / "metrics.jsonl").read_text().splitlines() if line]
        if rows:
            plot_curves(rows, self.run_dir / "curves.png")
        final = sorted((self.run_dir / "samples").glob("step-*.png"))
        if final:
            shutil.copyfile(final[-1], self.run_dir / "samples.png")


class _Flatten(nn.Module):
    """A user's D may return (B, 1); the losses want (B,)."""

    def __init__(self, D: nn.Module):
        super().__init__()
        self.inner = D

    def forward(self, x, *y):
        return self.inner(x, *y).reshape(x.shape[0])


def _jsonable(obj):
    return [_jsonable(o) for o in obj] if isinstance(obj, (tuple, list)) else obj


def _tuplify(obj):
    return tuple(_tuplify(o) for o in obj) if isinstance(obj, list) else obj
