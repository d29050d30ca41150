"""The classic reference loop: how a DCGAN is trained in pytorch/examples `dcgan/main.py`, on
ganforge's DCGAN architecture, so speed and quality can be compared against a well-known baseline.

What makes it "classic" (and what ganforge's own loop does differently):
  - D ends in a Sigmoid and the loss is nn.BCELoss on probabilities (ganforge: logits + softplus);
  - fp32, contiguous (NCHW) tensors, eager mode (cuDNN's autotuner on, as in dcgan/main.py);
  - data come from a torch DataLoader over a TensorDataset of float images normalised to [-1, 1]
    on the host (ganforge: uint8 in memory, gathered and normalised on the device);
  - one G forward per step: the D phase scores `fake.detach()`, the G phase reuses the same `fake`;
  - G's first layer runs through the transposed-convolution kernel (ganforge: one matrix product);
  - D is not frozen in the G phase, so D's gradients are computed there too (then zeroed next step);
  - D's real and fake terms are two separate backward passes;
  - `.item()` on the losses and D's outputs every step (a host sync each step);
  - Adam, lr 2e-4, betas (0.5, 0.999) for both networks.
The DataLoader runs in-process (num_workers=0): on a CPU the workers would only compete with the
training threads for the same cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

REAL, FAKE = 1.0, 0.0


def classic_models(data_shape: tuple[int, int, int], latent_dim: int = 64, width: int | None = None):
    """ganforge's DCGAN (G, D), with D's logit turned into a probability as the classic loop expects."""
    from ganforge.models import build

    G, D = build("dcgan", data_shape, latent_dim=latent_dim, width=width)
    # G's first layer computed as dcgan/main.py computes it: by the transposed-convolution kernel
    # (ganforge runs it as the equivalent matrix product, models/dcgan.py: LatentProjection)
    G.net[0].__class__ = nn.ConvTranspose2d
    return G, nn.Sequential(D, nn.Sigmoid())


def host_loader(images_uint8: torch.Tensor, batch: int, seed: int) -> torch.utils.data.DataLoader:
    """The classic input pipeline: float images in [-1, 1] on the host, shuffled by a DataLoader."""
    images = images_uint8.float().div(255).sub(0.5).div(0.5).contiguous()  # ToTensor + Normalize(0.5, 0.5)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=batch, shuffle=True,
                                       num_workers=0, drop_last=True, generator=generator)


class ClassicLoop:
    """One object per run so that `step()` can be timed step by step (the bench interleaves it with
    ganforge's step); `classic_train` below runs it for a number of steps or seconds."""

    def __init__(self, images_uint8: torch.Tensor, batch: int = 64, *, latent_dim: int = 64,
                 width: int | None = None, seed: int = 0, device: str | torch.device = "cpu"):
        torch.manual_seed(seed)
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # as dcgan/main.py sets it
        self.batch, self.latent_dim = batch, latent_dim
        self.G, self.D = classic_models(tuple(images_uint8.shape[1:]), latent_dim, width)
        self.G.to(self.device).train()
        self.D.to(self.device).train()
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loader = host_loader(images_uint8, batch, seed)
        self._batches = iter(self.loader)
        self.epoch = 0
        self.last: dict[str, float] = {}

    def next_batch(self) -> torch.Tensor:
        try:
            (real,) = next(self._batches)
        except StopIteration:
            self.epoch += 1
            self._batches = iter(self.loader)
            (real,) = next(self._batches)
        return real

    def step(self) -> dict[str, float]:
        real = self.next_batch().to(self.device)
        n = real.size(0)

        # (1) D: maximise log D(x) + log(1 - D(G(z)))
        self.D.zero_grad()
        label = torch.full((n,), REAL, dtype=real.dtype, device=self.device)
        output = self.D(real).view(-1)
        err_d_real = self.criterion(output, label)
        err_d_real.backward()
        d_x = output.mean().item()

        noise = torch.randn(n, self.latent_dim, device=self.device)
        fake = self.G(noise)
        label.fill_(FAKE)
        output = self.D(fake.detach()).view(-1)
        err_d_fake = self.criterion(output, label)
        err_d_fake.backward()
        d_g_z1 = output.mean().item()
        err_d = err_d_real + err_d_fake
        self.opt_d.step()

        # (2) G: maximise log D(G(z)), through the same fakes
        self.G.zero_grad()
        label.fill_(REAL)
        output = self.D(fake).view(-1)
        err_g = self.criterion(output, label)
        err_g.backward()
        d_g_z2 = output.mean().item()
        self.opt_g.step()

        self.last = {"loss_d": err_d.item(), "loss_g": err_g.item(), "d_real": d_x, "d_fake": d_g_z1,
                     "d_fake_after": d_g_z2}
        return self.last


@dataclass
class ClassicStats:
    steps: int
    images: int
    seconds: float
    img_per_s: float
    last: dict

    def to_dict(self) -> dict:
        return {"steps": self.steps, "images": self.images, "seconds": round(self.seconds, 3),
                "img_per_s": round(self.img_per_s, 1), "last": self.last}


def classic_train(dataset, resolution: int | None = None, batch: int = 64, *, seconds: float | None = None,
                  steps: int | None = None, seed: int = 0, latent_dim: int = 64, width: int | None = None,
                  device: str | torch.device = "cpu", data_dir: str | None = None):
    """Train ganforge's DCGAN with the classic loop for `steps` steps or `seconds` of wall time
    (whichever ends first; at least one must be given). `dataset` is a name / folder (loaded as
    `ganforge train` would) or a `ganforge.data.Dataset`. Returns (G in eval mode, ClassicStats).
    G maps noise (B, latent_dim) to images in [-1, 1], exactly like a ganforge-trained G."""
    from ganforge.errors import ConfigError

    if seconds is None and steps is None:
        raise ConfigError("classic_train needs steps or seconds: pass one of them")
    if isinstance(dataset, str):
        from ganforge.data import load_dataset
        dataset = load_dataset(dataset, data_dir=data_dir, resolution=resolution)
    elif resolution is not None:
        dataset = dataset.resized(resolution)
    if not dataset.is_image:
        raise ConfigError("the classic DCGAN loop needs image data: pass an image dataset")
    loop = ClassicLoop(dataset.data, batch, latent_dim=latent_dim, width=width, seed=seed, device=device)
    done, start = 0, time.perf_counter()
    while (steps is None or done < steps) and (seconds is None or time.perf_counter() - start < seconds):
        loop.step()
        done += 1
    elapsed = time.perf_counter() - start
    loop.G.eval()
    stats = ClassicStats(done, done * loop.batch, elapsed, done * loop.batch / max(elapsed, 1e-9), loop.last)
    return loop.G, stats
