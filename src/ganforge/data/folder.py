"""A folder of the user's own images: recursive, centre-cropped and resized once, held in memory.

Sub-folder names become class labels when every image sits in one. Files that cannot be decoded
are skipped and counted in a single warning; it is an error only when none remain.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ganforge.data.dataset import Dataset
from ganforge.errors import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
log = logging.getLogger("ganforge")


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def decode(path: Path, resolution: int) -> np.ndarray | None:
    """One image as (H, W, 3) or (H, W) uint8, centre-cropped to a square and resized; None if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            im = im.convert("L" if grey else "RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side))
            im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def load_image_folder(root: Path, resolution: int) -> Dataset:
    paths = list_images(root)
    if not paths:
        raise DataError(f"no images (.png, .jpg, .jpeg, .webp, .bmp) found in {root}: point --data at a folder that holds some")
    decoded = [(p, decode(p, resolution)) for p in paths]
    good = [(p, a) for p, a in decoded if a is not None]
    skipped = len(paths) - len(good)
    if not good:
        raise DataError(f"none of the {len(paths)} image files in {root} could be read: check that they are valid images")
    if skipped:
        log.warning("skipped %d of %d files in %s that could not be read as images", skipped, len(paths), root)

    rgb = any(a.ndim == 3 for _, a in good)
    arrays = [np.repeat(a[..., None], 3, axis=2) if rgb and a.ndim == 2 else a for _, a in good]
    stacked = np.stack(arrays)
    data = torch.from_numpy(stacked).permute(0, 3, 1, 2) if rgb else torch.from_numpy(stacked).unsqueeze(1)

    labels, classes = None, None
    parents = [p.relative_to(root).parts for p, _ in good]
    if all(len(parts) >= 2 for parts in parents):
        classes = sorted({parts[0] for parts in parents})
        if len(classes) > 1:
            index = {c: i for i, c in enumerate(classes)}
            labels = torch.tensor([index[parts[0]] for parts in parents], dtype=torch.long)
        else:
            classes = None
    return Dataset(root.name or str(root), data.contiguous(), labels, classes,
                   info={"source": str(root), "skipped": skipped, "kind": "folder"})
