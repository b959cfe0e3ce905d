"""A results cache on disk: JSON files keyed by a hash of their settings and the code version.

``key = sha256(canonical JSON of {"kind", "settings", "code"})[:20]`` where ``code`` is
:func:`code_version` — the package version plus a hash of the source of the modules that
produce results (the training loop, the task's model and data, the spectrum engine; so
editing one of them invalidates old results instead of silently reusing them, while editing
the tuning or the CLI does not). Files are written to a temporary file in the same folder,
fsynced and moved into place with ``os.replace``: an interrupted run never leaves a truncated
entry, and a long sweep resumes from the entries already written.

The default folder is ``$NETS_CACHE`` or ``runs/cache``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from labkit.atomic import atomic_write_bytes

__all__ = ["DEFAULT_SOURCES", "SPECTRUM_SOURCES", "cache_dir", "cache_key", "cached",
           "code_version"]

#: Default sources whose edits invalidate results: the training loop, the models and data, the
#: spectrum engine. Callers narrow it with ``sources=`` (e.g. a zoo run ignores layernorm.py).
DEFAULT_SOURCES = ("training.py", "tasks.py", "zoo.py", "data.py", "heterogeneity.py",
                   "layernorm.py", "finetune.py", "spectrum.py", "hvp.py", "lanczos.py",
                   "slq.py", "density.py", "js.py", "blocks.py")
SPECTRUM_SOURCES = ("spectrum.py", "hvp.py", "lanczos.py", "slq.py", "density.py", "js.py",
                    "blocks.py")


@cache
def code_version(sources: tuple[str, ...] = DEFAULT_SOURCES) -> str:
    """Package version and a hash of the given sources.

    Args:
        sources: Module import paths (``"nets.zoo.models"``, hashed from the file
            :func:`importlib.util.find_spec` finds) or bare ``nets`` file names (``"hvp.py"``).

    Returns:
        ``"<version>+<12 hex digits>"``.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("blockhet")
    except PackageNotFoundError:
        own = "unknown"
    h = hashlib.sha256()
    nets_root = Path(__file__).resolve().parent.parent / "nets"
    names = {"zoo.py": "models.py", "heterogeneity.py": "scaled_mlp.py"}
    for name in sources:
        if not name.endswith(".py"):  # an import path: the file of that module
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                raise ValueError(f"cache source {name!r} is not an importable module")
            h.update(name.encode())
            h.update(Path(spec.origin).read_bytes())
            continue
        found = sorted(nets_root.rglob(names.get(name, name)))
        if not found:
            raise FileNotFoundError(f"cache source {name!r} not found under {nets_root}")
        for p in found:
            h.update(str(p.relative_to(nets_root)).encode())
            h.update(p.read_bytes())
    return f"{own}+{h.hexdigest()[:12]}"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path``, else ``$NETS_CACHE``, else ``runs/cache``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("NETS_CACHE", "runs/cache"))


def cache_key(kind: str, settings: Mapping[str, object],
              sources: tuple[str, ...] = DEFAULT_SOURCES) -> str:
    """Hash of a result's kind, settings (canonical JSON) and :func:`code_version`."""
    doc = json.dumps({"kind": kind, "settings": settings, "code": code_version(tuple(sources))},
                     sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def _write_atomic(path: Path, doc: dict) -> None:
    atomic_write_bytes(path, json.dumps(doc).encode())


def cached(kind: str, settings: Mapping[str, object], compute: Callable[[], dict], *,
           directory: str | os.PathLike | None = None, refresh: bool = False,
           sources: tuple[str, ...] = DEFAULT_SOURCES) -> dict:
    """Return the stored result for ``(kind, settings)``, computing and storing it if absent.

    Args:
        kind: Result family (a file-name prefix), e.g. ``"train"`` or ``"js0"``.
        settings: JSON-serializable settings that determine the result.
        compute: Produces the result as a JSON-serializable dict.
        directory: Cache folder (see :func:`cache_dir`); ``False``-y ``""`` is not allowed.
        refresh: Recompute even if stored.
        sources: ``nets`` source files whose content is part of the key.
    """
    if not kind or not kind.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"cache kind must be a simple name, got {kind!r}")
    sources = tuple(sources)
    path = cache_dir(directory) / f"{kind}-{cache_key(kind, settings, sources)}.json"
    if path.exists() and not refresh:
        try:
            with open(path) as f:
                doc = json.load(f)
            if doc.get("settings") == json.loads(json.dumps(settings, default=str)):
                return doc["result"]
        except (json.JSONDecodeError, KeyError):
            pass  # a foreign or damaged file: recompute and replace it
    result = compute()
    _write_atomic(path, {"kind": kind, "settings": settings, "code": code_version(sources),
                         "result": result})
    return result
