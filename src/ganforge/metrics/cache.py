"""Where metric artefacts live under ganforge's cache (`ganforge.cache`): trained domain classifiers and
reference statistics of real data, keyed by dataset."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ganforge.cache import cache_dir


def dataset_key(name: str) -> str:
    """A file-name-safe key for a dataset: built-in names as they are, folders as `basename-hash`."""
    from ganforge.data import BUILTIN

    if name in BUILTIN:
        return name
    path = Path(name).expanduser().resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"{safe_name(path.name or 'folder')}-{digest}"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def default_classifier_path(name: str) -> Path:
    return cache_dir() / "classifiers" / f"{dataset_key(name)}.safetensors"
