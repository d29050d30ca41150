"""Running out of a resource (disk space, a writable folder, memory) is not a bug in ganforge: these
turn the low-level exception into one line that says what ran out and what to do about it."""

from __future__ import annotations

import contextlib

from ganforge.errors import ConfigError

OOM_MESSAGES = ("out of memory", "can't allocate memory", "defaultcpuallocator")


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and
                                          any(m in str(e).lower() for m in OOM_MESSAGES))


def describe(e: BaseException) -> str | None:
    """'cannot write FILE (reason)' / 'out of memory' for a resource error, None for anything else."""
    if isinstance(e, OSError):
        return f"cannot write {e.filename or 'a file'} ({e.strerror or e})"
    if is_out_of_memory(e):
        return "out of memory"
    return None


@contextlib.contextmanager
def explain_out_of_memory(doing: str, fix: str):
    """Out of memory while `doing` becomes a ConfigError naming the `fix` (smaller settings)."""
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if not is_out_of_memory(e):
            raise
        raise ConfigError(f"out of memory while {doing}: {fix}") from None
