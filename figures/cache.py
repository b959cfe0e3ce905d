"""On-disk cache of computed figure data, keyed by settings and code version.

A result is stored as a pickle named ``<figure>-<key>.pkl`` where the key hashes the figure's
name, its settings and the source code of the packages it depends on, so changing a setting or
the code recomputes, and a second run with nothing changed only redraws. Writes are atomic
(temporary file + ``os.replace``), so an interrupted run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from labkit.atomic import atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent


def code_version(packages: Iterable[str]) -> str:
    """SHA-256 (first 16 hex digits) of every ``.py`` file of the given top-level packages."""
    h = hashlib.sha256()
    for pkg in sorted(set(packages)):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(name: str, settings: dict, packages: Iterable[str]) -> str:
    """Key of one figure's data: hash of name, settings (JSON, sorted) and code version."""
    blob = json.dumps({"figure": name, "settings": settings, "code": code_version(packages)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached(cache_dir: Path | None, name: str, settings: dict, packages: Iterable[str],
           compute: Callable[[], Any]) -> tuple[Any, bool]:
    """Return ``(result, hit)``: the cached result if its key matches, else ``compute()``
    stored under the key. ``cache_dir=None`` disables the cache."""
    if cache_dir is None:
        return compute(), False
    path = Path(cache_dir) / f"{name}-{cache_key(name, settings, packages)}.pkl"
    if path.exists():
        with path.open("rb") as f:
            return pickle.load(f), True
    result = compute()
    atomic_write_bytes(path, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return result, False
