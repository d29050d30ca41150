"""Datasets: every source returns the same `Dataset`, a uint8 image tensor (N, C, H, W) or
float points (N, 2) held in memory, plus optional labels. Datasets know nothing about models."""

from __future__ import annotations

from pathlib import Path

from ganforge.data.dataset import Dataset
from ganforge.data.names import is_archive_spec
from ganforge.errors import DataError

BUILTIN = ("digits", "ring8", "grid25", "mnist", "fashion-mnist")


def load_dataset(name: str, *, data_dir: str | None = None, resolution: int | None = None,
                 split: str = "train") -> Dataset:
    """Load a built-in dataset by name, or a folder of images, tar shards or a zip file by path.

    `resolution` resizes images (bilinear, after a centre crop for folders); None keeps the native size.
    `split` is "train" or "test" for datasets that have both.
    """
    if name == "digits":
        from ganforge.data.digits import load_digits
        ds = load_digits(split)
    elif name in ("ring8", "grid25"):
        from ganforge.data.toy2d import load_mixture
        return load_mixture(name, split)
    elif name in ("mnist", "fashion-mnist"):
        from ganforge.data.idx import load_idx_dataset
        ds = load_idx_dataset(name, data_dir, split)
    elif is_archive_spec(name):  # tar shards or a zip file, decoded into memory
        from ganforge.data.streaming import default_workers, open_source
        return open_source(name, resolution).to_dataset(default_workers())
    elif Path(name).expanduser().is_dir():
        from ganforge.data.folder import load_image_folder
        return load_image_folder(Path(name).expanduser(), resolution or 64)
    elif "/" in name or name.startswith("."):
        raise DataError(f"image folder '{name}' does not exist: pass an existing folder of images "
                        f"or one of {', '.join(BUILTIN)}")
    else:
        raise DataError(f"unknown dataset '{name}': use one of {', '.join(BUILTIN)} or a path to a folder of images")
    return ds.resized(resolution) if resolution else ds


__all__ = ["Dataset", "load_dataset", "BUILTIN"]
