"""MNIST and Fashion-MNIST from their standard IDX .gz files (no torchvision needed)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from ganforge.data.dataset import Dataset
from ganforge.errors import DataError

CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
HOW_TO_GET = {
    "mnist": "download train-images-idx3-ubyte.gz etc. from the MNIST site into that folder",
    "fashion-mnist": "run `apt-get install dataset-fashion-mnist` (Debian) or download the four .gz files "
                     "from github.com/zalandoresearch/fashion-mnist into that folder",
}


def search_dirs(name: str, data_dir: str | None) -> list[Path]:
    """Where IDX files are looked for, in order: --data-dir, $GANFORGE_DATA, Debian's dataset folder."""
    dirs = []
    if data_dir:
        dirs += [Path(data_dir), Path(data_dir) / name]
    if os.environ.get("GANFORGE_DATA"):
        dirs += [Path(os.environ["GANFORGE_DATA"]), Path(os.environ["GANFORGE_DATA"]) / name]
    dirs.append(Path("/usr/share/datasets") / name)
    return dirs


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzipped or not): magic, dims, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}; download the file again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes; download the file again")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    if len(raw) - start != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({len(raw) - start} bytes of data for shape {dims}); download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def load_idx_dataset(name: str, data_dir: str | None, split: str = "train") -> Dataset:
    prefix = "train" if split == "train" else "t10k"
    wanted = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    dirs = search_dirs(name, data_dir)
    for d in dirs:
        found = [next((d / (w + ext) for ext in (".gz", "") if (d / (w + ext)).is_file()), None) for w in wanted]
        if all(found):
            images, labels = (read_idx(p) for p in found)
            if images.shape[0] != labels.shape[0]:
                raise DataError(f"{d}: {images.shape[0]} images but {labels.shape[0]} labels; download the files again")
            return Dataset(name, torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                           list(CLASSES[name]), info={"source": str(d)})
    looked = ", ".join(str(d) for d in dirs)
    raise DataError(f"{name} files ({wanted[0]}.gz, {wanted[1]}.gz) not found in {looked}: "
                    f"{HOW_TO_GET[name]}, or pass --data-dir")
