"""The one shape all data takes inside ganforge."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Dataset:
    """Data held in memory.

    images: `data` is uint8 (N, C, H, W) in [0, 255]; points: float32 (N, 2).
    `labels` is int64 (N,) or None; `classes` names each label.
    `modes` and `mode_std` describe 2-D mixtures (the true centres), for scatter plots and mode metrics.
    """

    name: str
    data: torch.Tensor
    labels: torch.Tensor | None = None
    classes: list[str] | None = None
    modes: torch.Tensor | None = None
    mode_std: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return self.data.dtype == torch.uint8 and self.data.dim() == 4

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample: (C, H, W) or (2,)."""
        return tuple(self.data.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def __len__(self) -> int:
        return self.data.shape[0]

    def resized(self, resolution: int) -> "Dataset":
        """Same dataset at another square resolution (bilinear, antialiased); a no-op when it already fits."""
        if not self.is_image or self.data.shape[-1] == resolution and self.data.shape[-2] == resolution:
            return self
        out = []
        for chunk in self.data.split(4096):
            x = torch.nn.functional.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear",
                                                antialias=True, align_corners=False)
            out.append(x.round_().clamp_(0, 255).to(torch.uint8))
        return Dataset(self.name, torch.cat(out), self.labels, self.classes, info=dict(self.info))


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] to float in [-1, 1] (the range of G's tanh); points pass through."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(127.5).sub_(1.0)
    return batch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] to uint8 in [0, 255]."""
    return images.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def require_labels(data) -> None:
    """A class-conditional GAN needs a class per sample (a `Dataset` or a streamed `ImageStream`): say how to
    get them when there are none."""
    from ganforge.errors import DataError

    if data.labels is not None and data.num_classes >= 2:
        return
    if not data.is_image:
        raise DataError(f"{data.name} is unlabelled 2-D points, so --conditional cannot train on it: drop "
                        f"--conditional, or use a labelled dataset (digits, mnist, fashion-mnist)")
    if data.info.get("kind") == "folder" or getattr(data, "kind", None) in ("folder", "zip", "tar"):
        where = data.info.get("source", data.name)
        raise DataError(f"the images in {where} have no classes, so --conditional cannot train on them: put them "
                        f"in one sub-folder per class (at least two), or drop --conditional")
    raise DataError(f"{data.name} has no class labels, so --conditional cannot train on it: drop --conditional")
