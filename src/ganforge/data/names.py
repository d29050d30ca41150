"""Telling dataset names apart without importing anything heavy."""

from __future__ import annotations

import re


def is_archive_spec(name: str) -> bool:
    """True for names that point at tar shards (`a.tar`, `a-{000..009}.tar`, `'shards/*.tar'`) or a zip file."""
    return bool(re.search(r"\.(zip|tar|tgz|tar\.gz|tar\.bz2|tar\.xz|tar\.zst)$", name)
                or (".tar" in name and any(c in name for c in "{*?[")))
