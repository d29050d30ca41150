"""Every training setting in one dataclass, validated once, saved into the run as YAML.

CLI flags and YAML keys map one to one onto the fields (`--latent-dim` is `latent_dim`). Fields
left as None are chosen for the data and loss by `resolve()`, and the resolved values are what
the run directory records, so `ganforge train --config runs/NAME/config.yaml` replays a run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
CUDA_GRAPHS = ("auto", "on", "off")
OPTIMIZERS = ("adam", "rmsprop")
D_NORMS = ("batch", "layer", "spectral", "none")

# The 2-D mixtures' recipe, tuned with benchmarks/quality.py (--skip fashion) on one CPU thread. A 2-D latent keeps the
# modes far better balanced than a 64-D one (grid25 reverse KL 0.035 vs 0.39 at 8,000 steps); D learns
# twice as fast as G; a small R1 penalty (0.1; 0.03 and 0.3 were worse) lets the game settle; both rates
# decay to 0 over the second half, and a short EMA (0.99) follows those last, sharpest weights. Quality
# keeps rising with steps (seed 4: 92.2% high quality at 9,000, 94.8% at 12,000; a longer decay, a slower EMA
# or a batch of 512 did not beat that): both get 12,000, about 50 s on one thread in fp32.
MIXTURE_PRESET = {"batch": 256, "width": 128, "latent_dim": 2, "lr": 1e-3, "lr_d": 2e-3, "betas": (0.5, 0.9),
                  "r1": 0.1, "lr_decay": 0.5, "ema": 0.99}

# Settings whose "unset" gained a preset after runs were saved without them, with the value those runs used.
SETTINGS_ADDED_LATER = {"lr_decay": 0.0, "augment": "", "latent_components": 0, "d_hidden": 0}

# Defaults chosen per built-in dataset (values a user leaves unset). Anything else gets GENERIC.
PRESETS: dict[str, dict[str, Any]] = {
    # 1,797 tiny images: D memorises them within a few hundred steps unless it sees them shifted (DiffAugment)
    "digits": {"resolution": 16, "steps": 2000, "augment": "translation"},
    # twice the classic rates, D twice G's (TTUR): classifier FD after 600 CPU-seconds 4.42 against 5.68 with
    # only D's rate doubled (the classic 2e-4 for G). Batch 32: on the CPU as many images per second as 64,
    # so twice the updates, FD 3.69 against 4.43 (one seed each, the EMA's own BatchNorm statistics);
    # 8e-4 / 1.6e-3 at batch 32 gave 3.60, within one seed's noise, with less margin; hinge 3.73.
    # A 16-D latent: FD 2.93 / 3.03 (seeds 0 / 1) against 3.89 / 3.91 at 32, 4.20 at 64 and 5.28 at 128, the
    # recall unchanged (0.89 / 0.88); 8-D gave 2.51 / 3.11 but recall fell to 0.82 / 0.78 (fewer distinct images).
    # Kept against width 48 + hinge (600 CPU-s, seeds 0 / 1, 10,000 samples: 3.29 / 3.36 against this preset's 3.76 /
    # 3.09 on the same machine) and width 40 + hinge (3.50 / 3.55). At a fixed step count, width 48 or 32, batch 16,
    # the hinge loss or EMA 0.998 were within a seed's noise; RaGAN, LSGAN, spectral norm, R1, betas (0, 0.99), D at
    # 1.6e-3, two D steps and width 96 were worse (5,000 samples, one seed each). Also worse at 600 CPU-s (seeds 0 / 1,
    # 10,000 samples; this preset 3.79 / 3.45 on the same machine): a 12-D latent 4.18 / 3.53, a minibatch-std
    # feature in D 4.74 / 4.31, top-k G updates (the whole batch down to half over 5,000 steps) 4.17 / 4.28,
    # consistency regularisation on shifted reals 15.5 / 16.7, G at width 96 (D 64) 4.26 / 4.26; real labels of 0.9 gave
    # 3.59 / 3.59, no better.
    # Averages of one run's G: EMA 0.998 3.79 / 3.38, 0.999 3.79 / 3.45, as long as the warm-up allows 3.84 / 3.54.
    # What all of these left alone was the samples' precision (0.78, the classic loop's too; real images 0.95).
    # D's head as a hidden layer of 128 units (models/dcgan.py) raised it to 0.87 and recall to 0.91: FD 2.27 / 2.52
    # in 11,400-11,600 steps against 3.65 / 3.10 without it (14,400 steps) on the same machine; 256 units 2.50 / 2.61,
    # 64 2.48 (seed 0). The same layer in front of G (z -> 256 -> the 7 x 7 map) lost variety: recall 0.25, FD 6.85
    "fashion-mnist": {"batch": 32, "steps": 10000, "lr": 4e-4, "lr_d": 8e-4, "latent_dim": 16, "d_hidden": 128},
    "ring8": {**MIXTURE_PRESET, "steps": 12000},
    # G as fast as D: benchmarks/quality.py seeds 0-4, worst 95.6% high quality (mean 96.3%) against 94.8% (95.8%);
    # 1.5e-3 and 3e-3 were worse. ring8 keeps G at half D's rate (seed 0: 96.7% with 2e-3, 98.0% with 1e-3).
    # With one continuous latent none of these raised the worst seed above 95.8% (worst in brackets): hinge
    # (88.7%), LSGAN (94.2), RaGAN (93.1), EMA 0.995 (95.8) or 0.999 (95.7), decay over 0.75 (95.4), R1 every 4
    # steps (94.8), a 3-D latent (95.4), D at 3e-3 (95.0), betas (0.5, 0.99) (93.9), batch 128 for 16,000 steps
    # (92.8), 14,000 steps (95.6), width 160 for 10,000 (94.4) or 256 for 6,000 (92.0); spectral norm in D failed.
    # Its lost samples are bridges between modes. 50 latent components (models/mlp.py, sigma 0.2) in a 3-D latent,
    # 10,000 steps: worst 97.0%, mean 97.4% (seeds 0-4, 50-56 s). Over 12,000 steps one seed fell to 93.8%; 25
    # components 97.0 / 98.7% (seeds 0 / 1), 100 components worst 96.2%; sigma 0.3 worst 95.6%, 0.15 and 0.1 lost
    # modes (21 and 17 of 25); components given as a separate input beside unscaled z: 95.9% (seed 0). With 50
    # components, seeds 0-4: a 4-D latent worst 93.4%, R1 0.2 92.7% (one mode lost), 40 components 95.8%
    "grid25": {**MIXTURE_PRESET, "steps": 10000, "lr": 2e-3, "latent_dim": 3, "latent_components": 50},
}
GENERIC = {"steps": 5000}

# What each loss family trains with when the user does not say (from the papers that introduced them).
LOSS_DEFAULTS: dict[str, dict[str, Any]] = {
    "wgan": {"optimizer": "rmsprop", "lr": 5e-5, "d_steps": 5},
    "wgan-gp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "d_steps": 5, "d_norm": "layer"},
}
# Class-conditional runs, over the dataset's preset. On conditional Fashion-MNIST (width 32, 3,000 steps, the
# preset's rates) the nonsaturating loss made one image per class: per-class spread 0.04 and 0.03 of the data's
# (seeds 0, 1), FD 28.5 and 27.9. Hinge, the loss of projection discriminators, kept the variety at batch 64
# (spread 0.60 and 0.55, FD 19.6 and 18.8) but not at the unconditional preset's batch 32 (0.06, FD 27.4).
# A 64-D latent, also where the unconditional preset is smaller: with Fashion-MNIST's 16 the class accuracy
# fell to 0.904 / 0.831 (seeds 0 / 1; a sandal was asked for and made 12% of the time) from 0.923 / 0.965.
# D's linear head: the class accuracy above was measured with it, not with the unconditional preset's hidden one.
CONDITIONAL_DEFAULTS = {"loss": "hinge", "batch": 64, "latent_dim": 64, "d_hidden": 0}
COMMON_DEFAULTS = {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "d_steps": 1, "d_norm": "batch",
                   "ema": 0.999, "latent_dim": 64, "r1": 0.0, "lr_decay": 0.0,
                   "mode_seeking": 0.0, "latent_components": 0, "d_hidden": 0}


def _f(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    # what to learn
    data: str = _f("digits", "dataset name (digits, ring8, grid25, mnist, fashion-mnist), a folder of images, "
                             "tar shards (data.tar, 'shards/train-{000..099}.tar') or a .zip of images")
    data_dir: str | None = _f(None, "folder holding IDX files for mnist / fashion-mnist")
    resolution: int | None = _f(None, "square image size to train at (default: the dataset's own, 64 for folders)")
    stream: bool = _f(False, "read images from disk in DataLoader workers instead of memory (automatic for "
                             "folders / tar / zip larger than a quarter of RAM)")
    workers: int | None = _f(None, "DataLoader worker processes decoding streamed images (default: cores, at most 8)")
    # the networks and the game
    model: str | None = _f(None, "mlp, dcgan or resnet (default: mlp for 2-D points, dcgan for images)")
    latent_dim: int | None = _f(None, "size of the noise vector z (64; Fashion-MNIST 16; ring8 2; grid25 3)")
    width: int | None = _f(None, "network width: dcgan / resnet base channels (64), mlp hidden units "
                                 "(512; 128 for 2-D points)")
    latent_components: int | None = _f(None, "mlp G: z's first coordinate picks one of this many equally likely "
                                             "components, so clusters of data need no bridges of poor samples "
                                             "between them (0 = off; grid25 50)")
    d_hidden: int | None = _f(None, "dcgan D: units of a hidden layer between D's features and its logit, so D "
                                    "judges the whole shape non-linearly (0 = DCGAN's linear head, the default; "
                                    "Fashion-MNIST 128)")
    d_norm: str | None = _f(None, "D normalisation: batch, layer, spectral (spectral norm on every layer, "
                                  "dcgan and mlp) or none (default batch for dcgan; wgan-gp: layer)")
    conditional: bool = _f(False, "class-conditional GAN: G and D get each sample's class (needs labels: digits, "
                                  "mnist, fashion-mnist or a folder with one sub-folder per class)")
    loss: str | None = _f(None, "minimax, nonsaturating, wgan, wgan-gp, hinge, lsgan or ragan (default nonsaturating; "
                                "hinge for --conditional)")
    d_steps: int | None = _f(None, "D updates per G update (1; 5 for Wasserstein losses)")
    g_steps: int = _f(1, "G updates after each round of D updates")
    # stabilisers
    ema: float | None = _f(None, "decay of the moving average of G's weights that sampling and evaluation use "
                                 "(0 = off; default 0.999, a half-life of about 700 G updates, warmed up early; "
                                 "0.99 for 2-D points)")
    r1: float | None = _f(None, "R1 penalty weight gamma: gamma/2 * |grad D(x)|^2 on real data (0 = off; try 0.1 "
                                "to 10; default 0, 0.1 for 2-D points)")
    r1_every: int = _f(16, "compute the R1 penalty every N D updates (lazy, scaled by N)")
    mode_seeking: float | None = _f(None, "weight of G's mode-seeking term (Mao et al. 2019): two noise vectors must "
                                          "give different images; more variety within each class of a "
                                          "--conditional run, at some class accuracy (try 0.1 to 1; 0 = off, default)")
    augment: str | None = _f(None, "DiffAugment for small image sets: comma-separated translation, cutout, color, "
                                   "applied to real and fake images alike whenever D sees them (digits: translation; none = off)")
    # optimisation
    optimizer: str | None = _f(None, "adam or rmsprop (wgan: rmsprop)")
    lr: float | None = _f(None, "learning rate of G (2e-4; wgan 5e-5; wgan-gp 1e-4; ring8 1e-3; grid25 2e-3)")
    lr_d: float | None = _f(None, "learning rate of D (default: the same as --lr; 2e-3 for 2-D points left at "
                                  "their preset --lr); a larger one is TTUR "
                                  "(Heusel et al. 2017), e.g. --lr 1e-4 --lr-d 4e-4")
    betas: tuple[float, float] | None = _f(None, "Adam betas (0.5 0.999; wgan-gp 0 0.9; 2-D points 0.5 0.9)", nargs=2)
    lr_decay: float | None = _f(None, "fraction of the run, at its end, over which both learning rates fall "
                                      "linearly to 0 (0 = constant rates; default 0, 0.5 for 2-D points)")
    batch: int | None = _f(None, "images per batch, all processes together under torchrun (64; 256 for 2-D points)")
    # how long
    steps: int | None = _f(None, "number of G updates (the training step count)")
    epochs: float | None = _f(None, "train for this many passes over the data instead of --steps")
    seed: int = _f(0, "random seed: the same seed and settings give the same run")
    # where and how fast
    device: str = _f("auto", "auto (a GPU when there is one), cpu or cuda")
    precision: str = _f("auto", "auto (bf16 autocast where the hardware runs it fast, else fp32), fp32, bf16 or fp16")
    compile: bool = _f(False, "torch.compile G and D (faster steps after a compile of a minute or more)")
    cuda_graphs: str = _f("auto", "auto (on a GPU, replay the whole step as one CUDA graph where the settings "
                                  "allow it), on or off")
    sync_bn: bool = _f(False, "under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm; GPUs only)")
    # what gets written
    out: str | None = _f(None, "run directory (default: runs/DATA-TIMESTAMP)")
    log_every: int = _f(50, "steps between metric lines (and the only host syncs)")
    sample_every: int | None = _f(None, "steps between sample grids (default: about 20 per run)")
    checkpoint_every: int | None = _f(None, "steps between checkpoints (default: about 5 per run)")
    keep_checkpoints: int = _f(3, "how many recent checkpoints to keep")
    # measuring while training
    eval_every: int | None = _f(None, "steps between evaluations during training (modes / HQ / reverse KL for 2-D "
                                      "data, classifier FD / KID for images); keeps the best checkpoint (off by default)")
    eval_n: int | None = _f(None, "samples per evaluation during training (2500 for 2-D points as in PacGAN, "
                                  "2000 for images)")
    quiet: bool = _f(False, "plain log lines instead of a progress bar")
    # when losses or weights turn NaN / Inf
    on_divergence: str = _f("stop", "stop, or rollback: reload the last checkpoint with the learning rates halved")
    max_rollbacks: int = _f(3, "how many times --on-divergence rollback may roll back before it stops")

    # ---------------------------------------------------------------- loading and saving
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}: valid ones are {', '.join(sorted(known))}")
        if values.get("betas") is not None:
            values = {**values, "betas": tuple(values["betas"])}
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist: pass the path of a config.yaml") from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {path} is not valid YAML ({str(e).splitlines()[0]}): fix or regenerate it") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping of setting: value")
        return cls.from_dict(values)

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "TrainConfig":
        """A run's own settings, to resume it. They were resolved when it started, so a setting its
        config.yaml lacks or leaves empty (written before the setting existed, or while it was off)
        keeps the value the run trained with instead of taking a preset added since."""
        cfg = cls.from_yaml(Path(run_dir) / "config.yaml")
        return cfg.replace(**{k: v for k, v in SETTINGS_ADDED_LATER.items() if getattr(cfg, k) is None})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["betas"] is not None:
            d["betas"] = list(d["betas"])
        return d

    def save(self, path: Path) -> None:
        import yaml

        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- validation
    def validate(self) -> "TrainConfig":
        from ganforge.losses import LOSSES
        from ganforge.models import MODELS

        def positive(name, integer=True):
            v = getattr(self, name)
            if v is None:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a {'whole ' if integer else ''}number, got {v!r}")
            if not math.isfinite(v) or v <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be greater than 0, got {v}")

        def whole(name, zero=""):
            """A count that may be 0; `zero` says what 0 means."""
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                meaning = f" ({zero})" if zero else ""
                raise ConfigError(f"--{name.replace('_', '-')} must be a whole number >= 0{meaning}, got {v!r}")

        for name in ("latent_dim", "width", "d_steps", "g_steps", "batch", "steps", "resolution",
                     "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "eval_every", "eval_n"):
            positive(name)
        for name in ("lr", "lr_d", "epochs"):
            positive(name, integer=False)
        if self.lr_decay is not None and (isinstance(self.lr_decay, bool) or not isinstance(self.lr_decay, (int, float))
                                          or not 0 <= self.lr_decay <= 1):
            raise ConfigError(f"--lr-decay must be a fraction in [0, 1] such as 0.5 (0 = off), got {self.lr_decay!r}")
        positive("r1_every")
        whole("latent_components", "0 = off")
        whole("d_hidden", "0 = DCGAN's linear head")
        if self.latent_components and self.latent_dim is not None and self.latent_dim < 2:
            raise ConfigError(f"--latent-components needs --latent-dim 2 or more (one coordinate picks the component), "
                              f"got {self.latent_dim}: raise --latent-dim or pass --latent-components 0")
        if self.ema is not None and (isinstance(self.ema, bool) or not isinstance(self.ema, (int, float))
                                     or not 0 <= self.ema < 1):
            raise ConfigError(f"--ema must be a decay in [0, 1) such as 0.999 (0 turns it off), got {self.ema!r}")
        for name in ("r1", "mode_seeking"):  # weights of optional terms: 0 turns them off
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a number >= 0 (0 turns it off), got {v!r}")
        if self.augment not in (None, "", "none"):
            from ganforge.augment import parse_policy
            parse_policy(self.augment)
        whole("workers", "0 decodes in the training process")
        whole("max_rollbacks")
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError("--data must name a dataset or a folder")
        choices = {"loss": LOSSES, "model": MODELS, "precision": PRECISIONS, "device": DEVICES,
                   "optimizer": OPTIMIZERS, "d_norm": D_NORMS, "on_divergence": ("stop", "rollback"),
                   "cuda_graphs": CUDA_GRAPHS}
        for name, valid in choices.items():
            v = getattr(self, name)
            if name == "model" and v == "custom":  # the user's own modules, recorded so the run says so
                continue
            if v is not None and v not in valid:
                raise ConfigError(f"unknown {name.replace('_', ' ')} '{v}': use one of {', '.join(valid)}")
        if not isinstance(self.conditional, bool):
            raise ConfigError(f"conditional must be true or false, got {self.conditional!r}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("--steps and --epochs both given: pass only one")
        if self.betas is not None:
            if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
                raise ConfigError(f"--betas must be two numbers in [0, 1), got {self.betas}")
        return self

    def preset(self) -> dict[str, Any]:
        """The defaults of this config's dataset."""
        return PRESETS.get(self.data, GENERIC)

    def resolve(self, dataset_size: int, sample_shape: tuple[int, ...]) -> "TrainConfig":
        """Fill every unset field from the dataset's preset and the loss's defaults; validate."""
        self.validate()
        image = len(sample_shape) == 3
        if self.augment and not image:
            raise ConfigError(f"--augment transforms images, but {self.data} holds 2-D points: drop --augment")
        preset = {"model": "dcgan" if image else "mlp", **self.preset(), "resolution": sample_shape[-1] if image else None}
        conditional = CONDITIONAL_DEFAULTS if self.conditional else {}
        loss = self.loss or conditional.get("loss", "nonsaturating")
        # a loss family's own optimiser settings (Wasserstein critics) win over a dataset's tuned ones
        chosen = {**COMMON_DEFAULTS, "loss": loss, **preset, **conditional, **LOSS_DEFAULTS.get(loss, {})}
        if self.lr is not None or chosen["lr"] != preset.get("lr"):
            chosen.pop("lr_d", None)  # a preset's D rate goes only with its G rate; otherwise lr_d = lr
        filled = {k: v for k, v in chosen.items() if k in self.__dataclass_fields__ and getattr(self, k) is None}
        cfg = self.replace(**filled)
        if cfg.model != "dcgan" and self.d_hidden is None:
            cfg.d_hidden = 0  # a preset's D head is for its dcgan model
        if cfg.augment == "none":
            cfg.augment = ""  # off, and stays off when the saved config is replayed
        if cfg.batch is None:
            cfg.batch = 64
        if cfg.lr_d is None:
            cfg.lr_d = cfg.lr
        if cfg.epochs is not None:  # one epoch = every real sample seen once by D
            cfg.steps = max(1, math.ceil(cfg.epochs * dataset_size / (cfg.batch * cfg.d_steps)))
            cfg.epochs = None  # recorded as the step count it stands for
        elif cfg.steps is None:
            cfg.steps = GENERIC["steps"]
        if cfg.sample_every is None:
            cfg.sample_every = max(1, cfg.steps // 20)
        if cfg.checkpoint_every is None:
            cfg.checkpoint_every = max(1, cfg.steps // 5)
        return cfg.validate()
