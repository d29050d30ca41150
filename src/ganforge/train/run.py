"""A trained generator and the run directory it came from: what `Trainer.fit()` returns and what
`ganforge sample` / `ganforge eval` load."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.errors import CheckpointError, ConfigError


@contextlib.contextmanager
def eval_mode(G: nn.Module):
    """G in evaluation mode (BatchNorm uses its running statistics), put back as it was afterwards."""
    was_training = G.training
    G.eval()
    try:
        yield G
    finally:
        G.train(was_training)


def chunks(z: torch.Tensor, labels: torch.Tensor | None, device: torch.device | str, chunk: int):
    """(noise, G's extra arguments) in slices of `chunk` rows on `device`: the labels for a conditional G."""
    for start in range(0, len(z), chunk):
        y = () if labels is None else (labels[start:start + chunk].to(device),)
        yield z[start:start + chunk].to(device), y


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, device: torch.device | str = "cpu",
             chunk: int = 500) -> torch.Tensor:
    """G(z) (or G(z, labels) for a conditional G) in evaluation mode, in chunks, as float on the CPU."""
    with eval_mode(G):
        return torch.cat([G(zc, *y).float().cpu() for zc, y in chunks(z, labels, device, chunk)])


@torch.no_grad()  # forward-mode derivatives need no graph
def stretch(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, device: torch.device | str = "cpu",
            chunk: int = 500, directions: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
    """How much G stretches the noise at each z: the squared Frobenius norm of its Jacobian, |dG/dz|^2, (N,).

    A continuous G that learned well-separated modes must still cross the gaps between them somewhere,
    and does so where it stretches the noise most: those samples are the ones between the modes
    (Tanielian et al. 2020, "Learning disconnected manifolds: a no GAN's land"). Exact, one forward-mode
    derivative per noise dimension, for up to `directions` dimensions; above that Hutchinson's unbiased
    estimate, the mean of |J v|^2 over `directions` random v ~ N(0, I) per sample.
    """
    dim, out = z.shape[1], []
    basis = dim <= directions
    with eval_mode(G):
        for zc, y in chunks(z, labels, device, chunk):
            total = torch.zeros(len(zc), device=device)
            for k in range(dim if basis else directions):
                if basis:
                    v = torch.zeros_like(zc)
                    v[:, k] = 1
                else:
                    v = torch.randn(zc.shape, generator=generator).to(device)
                _, jv = torch.func.jvp(lambda u: G(u, *y), (zc,), (v,))
                total += jv.float().flatten(1).pow(2).sum(1)
            out.append((total if basis else total / directions).cpu())
    return torch.cat(out)


def class_rows(num_classes: int, n: int) -> tuple[torch.Tensor, int]:
    """Labels for a sample grid with one row per class, ceil(n / num_classes) samples per row, and that row length."""
    per_row = max(1, math.ceil(n / num_classes))
    return torch.arange(num_classes).repeat_interleave(per_row), per_row


class Run:
    """G is the generator as trained; G_ema, when the run kept one (`--ema`), the moving average of
    its weights, which sampling uses unless asked for `ema=False`. `classes` names the classes of a
    class-conditional run (None for an unconditional one)."""

    def __init__(self, run_dir: Path, config: TrainConfig, G: nn.Module, data_shape: tuple[int, ...],
                 device: torch.device | str = "cpu", G_ema: nn.Module | None = None, classes: list[str] | None = None):
        self.dir, self.config, self.G, self.G_ema = Path(run_dir), config, G, G_ema
        self.data_shape, self.device = tuple(data_shape), torch.device(device)
        self.latent_dim = getattr(G, "latent_dim", config.latent_dim)
        self.classes = list(classes) if classes else None

    @property
    def is_image(self) -> bool:
        return len(self.data_shape) == 3

    @property
    def conditional(self) -> bool:
        return self.classes is not None

    def noise(self, n: int, seed: int = 0) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    def generator(self, ema: bool = True) -> nn.Module:
        """The EMA generator when the run kept one and `ema` asks for it, else G as trained."""
        return self.G_ema if ema and self.G_ema is not None else self.G

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor:
        """G(z) (G(z, labels) when conditional) in evaluation mode: uint8 (N, C, H, W) images or float (N, 2)
        points, on the CPU. Uses the EMA generator when the run has one, unless ema=False."""
        from ganforge.data.dataset import to_uint8

        out = generate(self.generator(ema), z, labels, self.device)
        return to_uint8(out) if self.is_image else out

    # ------------------------------------------------------------------ classes
    def class_index(self, name_or_index: int | str) -> int:
        """A class given by index or by name, checked against the run's classes."""
        if not self.conditional:
            raise ConfigError(f"{self.dir} was trained without --conditional, so it cannot be asked for a class: "
                              f"drop the class, or train with --conditional")
        if isinstance(name_or_index, str) and name_or_index in self.classes:
            return self.classes.index(name_or_index)
        try:
            index = int(name_or_index)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(self.classes):
            shown = ", ".join(f"{i} {c}" for i, c in enumerate(self.classes[:12]))
            raise ConfigError(f"no class {name_or_index!r} in this run: give an index 0-{len(self.classes) - 1} or a "
                              f"name ({shown}{', ...' if len(self.classes) > 12 else ''})")
        return index

    def labels_for(self, n: int, labels=None) -> torch.Tensor | None:
        """The classes n conditional samples are asked for: `labels` as one class (index or name) for all,
        or a sequence of n; by default the classes in turn (0, 1, ..., K-1, 0, ...), a balanced set."""
        if labels is None:
            return torch.arange(n) % len(self.classes) if self.conditional else None
        if isinstance(labels, (int, str)):
            return torch.full((n,), self.class_index(labels), dtype=torch.long)
        labels = [self.class_index(c) for c in (labels.tolist() if torch.is_tensor(labels) else labels)]
        if len(labels) != n:
            raise ConfigError(f"{len(labels)} labels given for {n} samples: give one per sample, or one for all")
        return torch.tensor(labels, dtype=torch.long)

    def class_rows(self, n: int) -> tuple[torch.Tensor, int]:
        """Labels for a grid with one row per class (about n samples in all), and the row length."""
        return class_rows(len(self.classes), n)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int = 0, labels=None, ema: bool = True, drop_stretched: float = 0.0) -> torch.Tensor:
        """n new samples; the same seed gives the same samples. For a conditional run, `labels` says which
        classes (one class index or name for all, or one per sample; default: the classes in turn).

        drop_stretched = f > 0 draws n / (1 - f) noise vectors (rounded up, per class when conditional) and
        keeps the n that G stretches least (`stretch`): it drops the samples G puts between the modes it
        learned (JBTopK, Tanielian et al. 2020), at the cost of one forward-mode pass per noise dimension
        (at most 16)."""
        if not 0 <= drop_stretched < 1:
            raise ConfigError(f"--drop-stretched is the fraction of samples to drop, in [0, 1) such as 0.05: "
                              f"got {drop_stretched}")
        y = self.labels_for(n, labels)
        z = self.noise(n, seed) if not drop_stretched else self.unstretched_noise(n, seed, y, drop_stretched, ema)
        return self.generate(z, y, ema=ema)

    def unstretched_noise(self, n: int, seed: int, labels: torch.Tensor | None, fraction: float,
                          ema: bool) -> torch.Tensor:
        """n noise vectors, the least stretched of n / (1 - fraction) drawn (of each class's share when conditional)."""
        G = self.generator(ema)
        g = torch.Generator().manual_seed(seed)  # its first n draws are noise(n, seed)
        z = torch.empty(n, self.latent_dim)
        groups = [torch.arange(n)] if labels is None else [(labels == c).nonzero().view(-1) for c in labels.unique()]
        for idx in groups:
            m = math.ceil(len(idx) / (1 - fraction))
            candidates = torch.randn(m, self.latent_dim, generator=g)
            y = None if labels is None else labels[idx[:1]].expand(m)
            keep = stretch(G, candidates, y, self.device, generator=g).argsort()[:len(idx)].sort().values
            z[idx] = candidates[keep]
        return z

    def interpolate(self, rows: int = 8, steps: int = 10, seed: int = 0, labels=None) -> torch.Tensor:
        """A latent walk: each row goes in a straight line between two random noise vectors (for a
        conditional run, row r keeps class r mod K unless `labels` names one class for all)."""
        ends = self.noise(2 * rows, seed).view(rows, 2, -1)
        t = torch.linspace(0, 1, steps).view(1, steps, 1)
        z = ends[:, :1] * (1 - t) + ends[:, 1:] * t
        row_labels = self.labels_for(rows, labels)
        y = row_labels.repeat_interleave(steps) if row_labels is not None else None
        return self.generate(z.reshape(rows * steps, -1), y)


def checkpoint_file(run_dir: Path, checkpoint: str | int | None = None) -> Path:
    """The checkpoint to load: the newest (None), the best by evaluation during training ("best"), or a step."""
    folder = run_dir / "checkpoints"
    if checkpoint is None or checkpoint == "latest":
        return folder
    if checkpoint == "best":
        from ganforge.checkpoint import BEST, best_step

        checkpoint = best_step(folder)
        if checkpoint is None:
            raise CheckpointError(f"{run_dir} has no best checkpoint ({folder / BEST} is missing): train with "
                                  f"--eval-every STEPS, or leave out --checkpoint to use the newest")
    try:
        step = int(checkpoint)
    except ValueError:
        raise CheckpointError(f"--checkpoint must be best, latest or a step number, got '{checkpoint}'") from None
    path = folder / f"step-{step:08d}.json"
    if not path.is_file():
        from ganforge.checkpoint import list_checkpoints

        raise CheckpointError(f"{run_dir} has no checkpoint of step {step}: choose one of "
                              f"{list_checkpoints(folder) or 'none'}, best or latest")
    return path


def load_run(path: str | Path, device: str = "cpu", checkpoint: str | int | None = None) -> Run:
    """Rebuild G from a run directory's config.yaml and a checkpoint (safetensors only): the newest by default,
    "best" for the best by evaluation during training (--eval-every), or a step number."""
    from ganforge.checkpoint import load_checkpoint, load_module, refuse_pickle
    from ganforge.models import build
    from ganforge.train.trainer import pick_device

    device = pick_device(str(device))
    path = Path(path)
    refuse_pickle(path)
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"{path} is not a ganforge run directory (no config.yaml): pass the --out of a training run")
    config = TrainConfig.from_yaml(path / "config.yaml")
    tensors, meta = load_checkpoint(checkpoint_file(path, checkpoint))
    shape = tuple(meta["data_shape"])
    if config.model == "custom":
        raise CheckpointError(f"{path} was trained with custom modules; load them yourself from {path}/checkpoints")
    classes = meta.get("classes")  # absent in checkpoints written before conditional GANs: unconditional

    def generator(prefix):
        G, _ = build(config.model, shape, latent_dim=meta["latent_dim"], width=config.width,
                     d_norm=config.d_norm or "batch", num_classes=len(classes) if classes else 0,
                     components=config.latent_components or 0)
        load_module(prefix, G, tensors)
        return G.to(device)

    G = generator("G")  # first: a shape mismatch is named on the trained G
    G_ema = generator("G_ema") if any(k.startswith("G_ema.") for k in tensors) else None
    return Run(path, config, G, shape, device, G_ema=G_ema, classes=classes)
