"""A trained generator and the run directory it came from: what `Trainer.fit()` returns and what
`ganforge sample` / `ganforge eval` load."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.errors import CheckpointError


class Run:
    """G is the generator as trained; G_ema, when the run kept one (`--ema`), the moving average of
    its weights, which sampling uses unless asked for `ema=False`."""

    def __init__(self, run_dir: Path, config: TrainConfig, G: nn.Module, data_shape: tuple[int, ...],
                 device: torch.device | str = "cpu", G_ema: nn.Module | None = None):
        self.dir, self.config, self.G, self.G_ema = Path(run_dir), config, G, G_ema
        self.data_shape, self.device = tuple(data_shape), torch.device(device)
        self.latent_dim = getattr(G, "latent_dim", config.latent_dim)

    @property
    def is_image(self) -> bool:
        return len(self.data_shape) == 3

    def noise(self, n: int, seed: int = 0) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def generate(self, z: torch.Tensor, ema: bool = True) -> torch.Tensor:
        """G(z) in evaluation mode: uint8 (N, C, H, W) images or float (N, 2) points, on the CPU.
        Uses the EMA generator when the run has one, unless ema=False."""
        from ganforge.data.dataset import to_uint8

        G = self.G_ema if ema and self.G_ema is not None else self.G
        was_training = G.training
        G.eval()
        out = torch.cat([G(chunk.to(self.device)).float().cpu() for chunk in z.split(500)])
        G.train(was_training)
        return to_uint8(out) if self.is_image else out

    def sample(self, n: int, seed: int = 0, ema: bool = True) -> torch.Tensor:
        """n new samples; the same seed gives the same samples."""
        return self.generate(self.noise(n, seed), ema=ema)

    def interpolate(self, rows: int = 8, steps: int = 10, seed: int = 0) -> torch.Tensor:
        """A latent walk: each row goes in a straight line between two random noise vectors."""
        ends = self.noise(2 * rows, seed).view(rows, 2, -1)
        t = torch.linspace(0, 1, steps).view(1, steps, 1)
        z = ends[:, :1] * (1 - t) + ends[:, 1:] * t
        return self.generate(z.reshape(rows * steps, -1))


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
    def generator(prefix):
        G, _ = build(config.model, shape, latent_dim=meta["latent_dim"], width=config.width,
                     d_norm=config.d_norm or "batch")
        load_module(prefix, G, tensors)
        return G.to(device)

    G_ema = generator("G_ema") if any(k.startswith("G_ema.") for k in tensors) else None
    return Run(path, config, generator("G"), shape, device, G_ema=G_ema)
