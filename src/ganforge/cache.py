"""Where ganforge keeps what it computes once and reuses: trained domain classifiers, reference
statistics of real data, tar shard indexes. The root is $GANFORGE_CACHE when set, else ~/.cache/ganforge."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("GANFORGE_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "ganforge"
