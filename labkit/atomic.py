"""Atomic file writes shared by every package that stores results (caches, resumable runs)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_write_bytes", "remove_stale_temps"]

#: A temporary file older than this (seconds) belongs to a writer that died (SIGKILL, power
#: loss): a live writer holds its temporary file for milliseconds.
STALE_AFTER_S = 2.0


def remove_stale_temps(path: str | os.PathLike, *, older_than_s: float = STALE_AFTER_S
                       ) -> list[Path]:
    """Remove the temporary files ``.NAME.*.tmp`` that interrupted writes of ``path`` left.

    Args:
        path: The file whose leftovers to remove (``NAME`` is its name).
        older_than_s: Only files last modified at least this many seconds ago are removed, so
            a concurrent writer's live temporary file is left alone.

    Returns:
        The removed paths.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    now = time.time()
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime >= older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # another process cleaned it first
            pass
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part.

    The bytes go to a temporary file ``.NAME.XXXX.tmp`` in the same folder, are flushed to
    disk, made readable (0644) and moved over `path` with `os.replace`; on any error the
    temporary file is removed. Temporary files that a killed writer left behind are removed
    first (:func:`remove_stale_temps`).

    Args:
        path: The file to write.
        data: Its new content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
