"""The outer loop: set up data, models and optimisers from a config, run `GANStep` for the configured
number of steps, hand metrics to callbacks, write checkpoints, and return a `Run`.

Read `fit()` top to bottom: it is the whole of training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shlex
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.errors import ConfigError, TrainingStopped
from ganforge.train.callbacks import Callback, MetricsLog, Progress, SampleGrids
from ganforge.train.divergence import DivergenceGuard, find_problem, weights_finite
from ganforge.train.ema import EMA
from ganforge.train.evaluation import Evaluation
from ganforge.train.resources import describe, explain_out_of_memory
from ganforge.train.run import Run
from ganforge.train.signals import StopOnSignal
from ganforge.train.step import STATS, GANStep

log = logging.getLogger("ganforge")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no GPU: use --device cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(name: str, params, lr: float, betas, device: torch.device = torch.device("cpu"),
                   capturable: bool = False) -> torch.optim.Optimizer:
    from ganforge.train.speed import optimizer_kwargs

    kwargs = optimizer_kwargs(name, device, capturable)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, **kwargs)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **kwargs)


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
        self.saved_step: int | None = None

    # ------------------------------------------------------------------ the loop
    def fit(self) -> Run:
        self.setup()
        cfg = self.config
        evaluation = [Evaluation(cfg.eval_every, cfg.eval_n)] if cfg.eval_every else []  # adds eval/ keys: first
        callbacks = [*evaluation, MetricsLog(), SampleGrids(cfg.sample_every), *self.extra_callbacks,
                     Progress(cfg.quiet)]
        callbacks = callbacks if self.dist.is_main else []  # rank 0 alone writes logs, samples and evaluations
        # a signal stops at the end of a step; a full disk or too little memory is one line, not a traceback
        with self.stop_on_resource_error(), StopOnSignal() as stop:
            for cb in callbacks:
                cb.on_start(self)
            if cfg.on_divergence == "rollback" and not self.checkpoints() and self.dist.is_main:
                self.save_checkpoint()  # something to roll back to, even before the first regular checkpoint

            running, count = torch.zeros(len(STATS), device=self.device), 0
            lap, lap_step = time.perf_counter(), self.step
            while self.step < cfg.steps:
                if cfg.lr_decay:
                    self.set_learning_rates()
                batches = [(self.batches.next(), self.batches.labels) for _ in range(cfg.d_steps)]
                real_batches, labels = map(list, zip(*batches))  # labels: None unless conditional
                stats = self.gan_step(real_batches, labels)
                if self.ema is not None:
                    self.ema.update(self.G)
                running += stats
                count += 1
                self.step += 1

                evaluate_now = cfg.eval_every and self.step % cfg.eval_every == 0
                log_due = self.step % cfg.log_every == 0 or self.step == cfg.steps or evaluate_now
                save_due = self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps
                stopping = stop.received is not None and not self.dist.enabled  # ranks agree at the sync below
                if log_due or save_due or stopping:
                    # the one host sync of the interval: mean statistics, a weights-are-finite flag, a stop flag
                    health = torch.cat([running / count, weights_finite(self.G, self.D), stop.flag(self.device)])
                    *values, weights_ok, stop_flag = self.dist.mean(health).tolist()
                    stopping = stop_flag > 0
                    problem = find_problem(STATS, values, weights_ok)
                    if problem:
                        self.recover_from_divergence(problem)  # rolls back, or raises TrainingStopped
                        running.zero_()
                        count, lap, lap_step = 0, time.perf_counter(), self.step
                        continue
                if log_due:
                    now = time.perf_counter()
                    images = (self.step - lap_step) * cfg.batch * cfg.d_steps
                    metrics = {"step": self.step, "epoch": round(self.batches.epochs_done, 4),
                               **{k: round(v, 6) for k, v in zip(STATS, values)},
                               "img_per_s": round(images / (now - lap), 1), "time": round(time.time(), 3)}
                    running.zero_()
                    count, lap, lap_step = 0, now, self.step
                    for cb in callbacks:
                        cb.on_metrics(self, metrics)
                    lap = time.perf_counter()  # throughput counts training, not evaluation or logging
                for cb in callbacks:
                    cb.on_step(self)
                if (save_due or stopping) and self.dist.is_main:
                    self.save_checkpoint()
                if stopping:
                    raise TrainingStopped(f"stopped by {stop.name or 'a signal'} at step {self.step}; checkpoint "
                                          f"saved; continue with: ganforge train --resume "
                                          f"{shlex.quote(str(self.run_dir))}", exit_code=stop.exit_code)

            for cb in callbacks:
                cb.on_end(self)
            if self.dist.is_main:
                self.finish()
        self.dist.close()
        return Run(self.run_dir, self.config, self.G, self.dataset.shape, self.device,
                   G_ema=self.sampling_generator() if self.ema is not None else None, classes=self.classes)

    def set_learning_rates(self) -> None:
        """Both optimisers' rates for the coming update under --lr-decay: the configured rates, times the
        divergence guard's rollback scale, times the decay schedule's factor for this step."""
        from ganforge.train.schedule import lr_factor

        cfg = self.config
        factor = self.guard.lr_scale * lr_factor(self.step, cfg.steps, cfg.lr_decay)
        for opt, lr in ((self.opt_g, cfg.lr), (self.opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    def recover_from_divergence(self, problem: str) -> None:
        """Roll back to the newest checkpoint with lower learning rates, or stop with a message saying where."""
        bad_step, saved = self.step, self.checkpoints()
        if saved and self.guard.may_roll_back():
            scale = self.guard.roll_back()
            self.load_checkpoint(rollback=True)
            self.gan_step.reset()  # a recorded CUDA graph points at the optimisers' replaced state
            log.warning("step %d: %s; rolled back to step %d with learning rates x%g (rollback %d of %d)",
                        bad_step, problem, self.step, scale, self.guard.rollbacks, self.guard.max_rollbacks)
            return
        last = f"the last good checkpoint is {self.checkpoint_path(saved[-1])}" if saved else "no checkpoint was saved yet"
        if self.guard.policy == "rollback":
            fix = (f"rolled back {self.guard.rollbacks} time(s) already; start a new run with a lower --lr "
                   f"(or another --loss)")
        else:
            fix = (f"start a new run with a lower --lr, or continue with: ganforge train --resume "
                   f"{shlex.quote(str(self.run_dir))} --on-divergence rollback")
        raise TrainingStopped(f"training diverged at step {bad_step} ({problem}); {last}; {fix}")

    @contextlib.contextmanager
    def stop_on_resource_error(self):
        """A full disk, a lost mount or too little memory is not a bug: say what failed and how to continue."""
        try:
            yield
        except (OSError, RuntimeError, MemoryError) as e:
            problem = describe(e)
            if problem is None:
                raise
            saved = self.checkpoints()
            last = f"the last complete checkpoint is {self.checkpoint_path(saved[-1])}" if saved else "no checkpoint was saved"
            fix = "free some space or fix the folder" if isinstance(e, OSError) else "free memory (or use a smaller --batch)"
            raise TrainingStopped(f"{problem} at step {self.step}; {last}; {fix}, then continue with: ganforge train "
                                  f"--resume {shlex.quote(str(self.run_dir))}") from None

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        from ganforge.data.batches import make_batches
        from ganforge.data.dataset import require_labels
        from ganforge.data.streaming import open_training_data
        from ganforge.data.toy2d import MIXTURES
        from ganforge.models.dcgan import check_image_shape
        from ganforge.losses import get_loss
        from ganforge.train import graphs, speed
        from ganforge.train.distributed import Distributed, ShardedNoise

        cfg = self.config.validate()
        self.dist = Distributed.from_env(pick_device(cfg.device))  # one process unless started by torchrun
        self.device = self.dist.device(pick_device(cfg.device))
        resolution = cfg.resolution or cfg.preset().get("resolution")
        if resolution and cfg.model in (None, "dcgan") and cfg.data not in MIXTURES:
            check_image_shape((1, resolution, resolution))  # before resizing the data to a size no model takes
        with explain_out_of_memory(f"loading {cfg.data} at resolution {resolution}", "use a smaller --resolution"):
            self.dataset = open_training_data(cfg.data, data_dir=cfg.data_dir, stream=cfg.stream, resolution=resolution)
        cfg = self.config = cfg.resolve(len(self.dataset), self.dataset.shape)
        self.dist.check(cfg.batch, cfg.sync_bn, self.device)
        self.run_dir = self.dist.on_main(self.prepare_run_dir)
        seed_everything(cfg.seed)
        if cfg.conditional:
            require_labels(self.dataset)
        self.classes = list(self.dataset.classes) if cfg.conditional else None  # what G and D are conditioned on
        num_classes = len(self.classes) if self.classes else 0

        if self.G is not None:
            self.config = cfg = cfg.replace(model="custom")
        else:
            from ganforge.models import build
            with explain_out_of_memory("building the models", "use a smaller --width or --latent-dim"):
                self.G, self.D = build(cfg.model, self.dataset.shape, latent_dim=cfg.latent_dim, width=cfg.width,
                                       d_norm=cfg.d_norm, num_classes=num_classes,
                                       components=cfg.latent_components, d_hidden=cfg.d_hidden)
        self.latent_dim = getattr(self.G, "latent_dim", cfg.latent_dim)
        self.G.to(self.device).train()
        self.D.to(self.device).train()
        if self.device.type == "cuda" and not torch.backends.cudnn.deterministic:
            torch.backends.cudnn.benchmark = True  # every step has the same shapes: time cuDNN's algorithms once
        precision = speed.resolve_precision(cfg.precision, self.device, images=self.dataset.is_image)
        self.config = cfg = cfg.replace(precision=precision)
        # torch.compile on a GPU mis-strides the backward of a channels_last convolution (seen with torch 2.11)
        channels_last = not (cfg.compile and self.device.type == "cuda") and speed.to_channels_last(self.G, self.D)
        self.loss = get_loss(cfg.loss, r1=cfg.r1, r1_every=cfg.r1_every, mode_seeking=cfg.mode_seeking)
        cuda_graphs = graphs.wanted(cfg, self.device, self.loss, self.dist.enabled)  # replay the step as one graph
        self.opt_g = make_optimizer(cfg.optimizer, self.G.parameters(), cfg.lr, cfg.betas, self.device, cuda_graphs)
        self.opt_d = make_optimizer(cfg.optimizer, self.D.parameters(), cfg.lr_d, cfg.betas, self.device, cuda_graphs)
        self.grad_scaler = speed.grad_scaler(cfg.precision, self.device)  # fp16 on CUDA only, else None
        self.ema = EMA(self.G, cfg.ema) if cfg.ema else None  # the generator that sampling uses
        self.augment = None
        if cfg.augment:  # D sees every image, real or fake, through the same random transformations
            from ganforge.augment import DiffAugment
            self.augment = DiffAugment(cfg.augment, seed=cfg.seed * 1009 + self.dist.rank, device=self.device)
        self.batches = make_batches(self.dataset, cfg.batch, cfg.seed, self.device, rank=self.dist.rank,
                                    world_size=self.dist.world_size, workers=cfg.workers,
                                    labels=cfg.conditional)
        self.guard = DivergenceGuard(cfg.on_divergence, cfg.max_rollbacks)
        if self.resume and self.checkpoints():
            self.load_checkpoint()
        elif self.resume:  # killed before its first checkpoint: nothing was saved, so it starts again
            log.warning("%s has no checkpoint yet: starting it again from step 0", self.run_dir)
            if self.dist.is_main:
                drop_metrics_after(self.run_dir / "metrics.jsonl", 0)
        elif self.dist.is_main:
            cfg.save(self.run_dir / "config.yaml")
        G, D = self.dist.wrap(self.G, _Flatten(self.D), cfg.sync_bn)  # DDP when several processes
        if self.augment is not None:
            from ganforge.augment import Augmented
            D = Augmented(D, self.augment)
        if cfg.compile:
            G = speed.compiled(G)
            if self.loss.differentiates_gradients:
                log.info("--compile: D stays uncompiled, since its gradient penalty needs a double backward")
            else:
                D = speed.compiled(D)
        step = GANStep(G, D, self.opt_g, self.opt_d, self.loss, self.latent_dim, g_steps=cfg.g_steps)
        if self.dist.enabled:  # each rank draws its rows of the global noise batch
            step.noise = ShardedNoise(self.latent_dim, self.dist.rank, self.dist.world_size)
        self.gan_step = speed.FastStep(step, device=self.device, precision=cfg.precision,
                                       channels_last=channels_last, scaler=self.grad_scaler, cuda_graphs=cuda_graphs)
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

    # ------------------------------------------------------------------ sampling
    def sampling_generator(self) -> nn.Module:
        """The generator that samples: the EMA of G's weights (with BatchNorm statistics measured for those
        weights) when the run keeps one, else G."""
        if self.ema is None:
            return self.G
        self.ema.measure_batchnorm(self.latent_dim, self.config.batch, self.device, self.config.seed,
                                   num_classes=len(self.classes) if self.classes else 0)
        return self.ema.module

    def generate(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G's samples for the given noise (and classes, when conditional), in evaluation mode: uint8 images
        or float points, on the CPU; the EMA generator's when the run keeps one."""
        from ganforge.data.dataset import to_uint8
        from ganforge.train.run import generate

        out = generate(self.sampling_generator(), noise, labels, self.device)
        return to_uint8(out) if self.dataset.is_image else out

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[int]:
        from ganforge.checkpoint import list_checkpoints
        return list_checkpoints(self.run_dir / "checkpoints")

    def checkpoint_path(self, step: int) -> Path:
        return self.run_dir / "checkpoints" / f"step-{step:08d}.json"

    def save_checkpoint(self) -> None:
        """Everything an exact resume needs: weights, optimiser moments, every RNG, the data position, counters."""
        from ganforge.checkpoint import flatten_module, flatten_optimizer, save_checkpoint

        if self.saved_step == self.step:  # already written this step (e.g. as the best so far)
            return
        tensors = {**flatten_module("G", self.G), **flatten_module("D", self.D)}
        if self.ema is not None:
            tensors.update(flatten_module("G_ema", self.sampling_generator()))
        if self.augment is not None:
            tensors["rng.augment"] = self.augment.state_dict()
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
                "python_rng": _jsonable(random.getstate()), "divergence": self.guard.state_dict(),
                "ema_updates": self.ema.updates if self.ema is not None else None,
                "r1_calls": [reg.calls for reg in self.loss.regularizers],
                "grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler else None}
        save_checkpoint(self.run_dir / "checkpoints", self.step, tensors, meta, keep=self.config.keep_checkpoints)
        self.saved_step = self.step

    def load_checkpoint(self, rollback: bool = False) -> None:
        """Restore the newest checkpoint. A rollback keeps the in-memory rollback count and applies its
        lower learning-rate scale on top of the rates the checkpoint was saved with."""
        from ganforge.checkpoint import clean_partial, load_checkpoint, load_module, load_optimizer
        from ganforge.train.speed import match_parameter_layout

        if self.dist.is_main:
            clean_partial(self.run_dir / "checkpoints")  # what a kill in the middle of a save left behind
        tensors, meta = load_checkpoint(self.run_dir / "checkpoints")
        load_module("G", self.G, tensors)
        load_module("D", self.D, tensors)
        if self.ema is not None and any(k.startswith("G_ema.") for k in tensors):
            load_module("G_ema", self.ema.module, tensors)
            self.ema.updates = meta["ema_updates"]
        elif self.ema is not None:  # a checkpoint saved without an average: start one from the resumed G
            self.ema = EMA(self.G, self.config.ema)
            log.info("the checkpoint holds no EMA generator: the average starts from the resumed weights")
        if self.augment is not None and "rng.augment" in tensors and self.dist.is_main:  # rank 0's is the one saved
            self.augment.load_state_dict(tensors["rng.augment"])
        for reg, calls in zip(self.loss.regularizers, meta.get("r1_calls", [])):
            reg.calls = calls
        load_optimizer("opt_g", self.opt_g, tensors, meta["optimizers"]["opt_g"])
        load_optimizer("opt_d", self.opt_d, tensors, meta["optimizers"]["opt_d"])
        for opt in (self.opt_g, self.opt_d):
            match_parameter_layout(opt)
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        kind, keys, *rest = meta["numpy_rng"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
        random.setstate(_tuplify(meta["python_rng"]))
        self.batches.load_state_dict(meta["batches"])
        if self.grad_scaler is not None and meta.get("grad_scaler"):
            self.grad_scaler.load_state_dict(meta["grad_scaler"])
        self.step = self.saved_step = meta["step"]
        saved = meta.get("divergence", {"rollbacks": 0, "lr_scale": 1.0})
        if rollback:
            for opt in (self.opt_g, self.opt_d):
                for group in opt.param_groups:
                    group["lr"] *= self.guard.lr_scale / saved["lr_scale"]
        else:
            self.guard.load_state_dict(saved)
            if self.dist.is_main:
                drop_metrics_after(self.run_dir / "metrics.jsonl", self.step)
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


def drop_metrics_after(path: Path, step: int) -> None:
    """Forget the metric lines a killed run wrote after its last checkpoint: the resumed run writes them again."""
    from ganforge.checkpoint import atomic_write

    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:  # a line cut short by the kill
            pass
    if len(kept) != len(lines):
        atomic_write(path, lambda f: f.write("".join(k + "\n" for k in kept).encode()))


def _jsonable(obj):
    return [_jsonable(o) for o in obj] if isinstance(obj, (tuple, list)) else obj


def _tuplify(obj):
    return tuple(_tuplify(o) for o in obj) if isinstance(obj, list) else obj
