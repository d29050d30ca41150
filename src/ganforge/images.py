"""Image grids and PNG files, with NumPy and Pillow only."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """uint8 (N, C, H, W) -> one uint8 (H', W', C) array, `nrow` images per row (default: square)."""
    images = images.detach().cpu()
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), pad_value, dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top:top + h, left:left + w] = arr[i]
    return grid


def to_pil(array: np.ndarray, min_cell: int = 0, cell: int = 0):
    """A grid as a PIL image; small images are enlarged (nearest, so pixels stay sharp) until a cell is `min_cell` px."""
    from PIL import Image

    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if min_cell and cell and cell < min_cell:
        factor = math.ceil(min_cell / cell)
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    return img


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None, min_cell: int = 48) -> Path:
    """Write uint8 (N, C, H, W) images as one PNG grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(make_grid(images, nrow), min_cell, images.shape[-1]).save(path)
    return path


def save_images(images: torch.Tensor, folder: Path) -> None:
    """One PNG per image, numbered."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    arr = images.detach().cpu().permute(0, 2, 3, 1).numpy()
    for i, a in enumerate(arr):
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(folder / f"{i:06d}.png")
