"""The results cache of nets and figures: checked record files keyed by settings and code.

``key = sha256(canonical JSON of {"kind", "settings", "code"})[:20]`` where ``code`` is
:func:`code_version` of the modules that produce the result, **named by import path**
(``"nets.studies.training"``, or a whole package such as ``"nets"``). Each module is located
with :func:`importlib.util.find_spec` and its source hashed together with its import path, so
editing, moving or renaming a module invalidates the results it produced; a module that cannot
be found is an error (never silently skipped).

An entry is a :mod:`labkit.records` file ``<kind>-<key>.npz`` (arrays and JSON metadata, no
pickle, with a checksum), written atomically. On reading, an entry that fails any check —
unreadable, damaged, foreign, other kind, settings, code version or input fingerprint — is
reported by name (a :class:`CacheWarning`) and recomputed.

The default folder is ``$NETS_CACHE`` or ``runs/cache``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from labkit import jsonio
from labkit.records import RecordError, read_record, write_record

__all__ = ["CacheWarning", "cache_dir", "cache_key", "cached", "code_version",
           "load_or_compute", "module_files"]


class CacheWarning(UserWarning):
    """A cache entry failed a check and is being recomputed (the message names the file)."""


def module_files(module: str) -> list[tuple[str, Path]]:
    """The source files of ``module`` (an import path) as ``(label, path)`` pairs.

    A plain module gives its one file; a package gives every ``.py`` file below it, labelled by
    its path relative to the package folder.

    Args:
        module: An import path such as ``"nets.engine.hvp"`` or ``"nets"``.

    Raises:
        ValueError: ``module`` is not an import path of an existing module, or its file moved.
    """
    if not isinstance(module, str) or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*",
                                                         module):
        raise ValueError(f"cache modules must be import paths like 'nets.engine.hvp', "
                         f"got {module!r}")
    importlib.invalidate_caches()
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as e:
        spec, why = None, f" ({e})"
    else:
        why = ""
    if spec is None:
        raise ValueError(f"cache module {module!r} not found{why}: name the module that "
                         "computes the result by its current import path")
    if spec.submodule_search_locations:
        files = []
        for root in map(Path, spec.submodule_search_locations):
            files += [(f"{module}/{p.relative_to(root).as_posix()}", p)
                      for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts]
        if not files:
            raise ValueError(f"cache module {module!r} is a package without source files")
        return files
    if not spec.origin or not Path(spec.origin).is_file() or not spec.origin.endswith(".py"):
        raise ValueError(f"cache module {module!r} has no Python source file "
                         f"(origin {spec.origin!r}; was it moved?)")
    return [(module, Path(spec.origin))]


def code_version(modules: Iterable[str]) -> str:
    """Package version and a hash of the source of ``modules`` (import paths).

    Args:
        modules: Import paths of modules or packages (see :func:`module_files`).

    Returns:
        ``"<blockhet version>+<16 hex digits>"``.

    Raises:
        ValueError: a module cannot be found (see :func:`module_files`), or none is given.
    """
    if isinstance(modules, str):
        raise TypeError("modules must be a sequence of import paths, not one string")
    names = sorted(set(modules))
    if not names:
        raise ValueError("name at least one module whose code computes the result")
    try:
        own = version("blockhet")
    except PackageNotFoundError:
        own = "unknown"
    h = hashlib.sha256()
    for name in names:
        for label, path in module_files(name):
            h.update(f"\0{label}\0".encode())
            try:
                h.update(path.read_bytes())
            except FileNotFoundError as e:
                raise ValueError(f"cache module {name!r}: {path} vanished") from e
    return f"{own}+{h.hexdigest()[:16]}"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path``, else ``$NETS_CACHE``, else ``runs/cache``.

    Args:
        path: An explicit folder (wins over the environment).
    """
    if path is not None:
        return Path(path)
    return Path(os.environ.get("NETS_CACHE", "runs/cache"))


def _canonical(settings: Mapping[str, object]) -> Any:
    try:
        return jsonio.to_jsonable(settings)
    except TypeError as e:
        raise TypeError(f"cache settings must be JSON values: {e}") from e


def cache_key(kind: str, settings: Mapping[str, object], modules: Iterable[str]) -> str:
    """Hash of a result's kind, settings (canonical JSON) and :func:`code_version`.

    Args:
        kind: Result family.
        settings: JSON-serialisable settings.
        modules: Import paths of the modules that compute the result.

    Returns:
        20 hex digits.
    """
    doc = json.dumps({"kind": kind, "settings": _canonical(settings),
                      "code": code_version(modules)}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def load_or_compute(kind: str, settings: Mapping[str, object], compute: Callable[[], Any], *,
                    modules: Iterable[str], directory: str | os.PathLike | None = None,
                    refresh: bool = False, fingerprint: str = "",
                    types: Iterable[type] = ()) -> tuple[Any, bool]:
    """``(result, hit)``: the stored result for ``(kind, settings)``, else ``compute()`` stored.

    Args:
        kind: Result family (a file-name prefix), e.g. ``"train"`` or ``"js0"``.
        settings: JSON-serialisable settings that determine the result.
        compute: Produces the result (see :func:`labkit.records.encode` for what it may hold).
        modules: Import paths of the modules whose code computes the result (part of the key).
        directory: Cache folder (see :func:`cache_dir`).
        refresh: Recompute even if stored.
        fingerprint: Fingerprint of the model parameters and data the result comes from, when
            the caller has them; an entry with another fingerprint is recomputed.
        types: Dataclasses the result may contain (the reader's allow-list).

    Returns:
        The result and whether it came from the cache.
    """
    if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", kind):
        raise ValueError(f"cache kind must be a simple name, got {kind!r}")
    modules, types = tuple(modules) if not isinstance(modules, str) else modules, tuple(types)
    code = code_version(modules)
    canonical = _canonical(settings)
    path = cache_dir(directory) / f"{kind}-{cache_key(kind, settings, modules)}.npz"
    if not refresh and path.exists():
        try:
            rec = read_record(path, types=types)
            for what, got, want in (("kind", rec.kind, kind), ("settings", rec.settings, canonical),
                                    ("code version", rec.code, code),
                                    ("fingerprint", rec.fingerprint, fingerprint)):
                if got != want:
                    raise RecordError(f"{path}: other {what} ({got!r}, expected {want!r})")
            return rec.result, True
        except (RecordError, OSError) as e:
            warnings.warn(f"cache entry rejected, recomputing: {e}", CacheWarning, stacklevel=2)
    result = compute()
    write_record(path, kind=kind, settings=canonical, code=code, result=result,
                 fingerprint=fingerprint, types=types)
    return result, False


def cached(kind: str, settings: Mapping[str, object], compute: Callable[[], Any], *,
           modules: Iterable[str], directory: str | os.PathLike | None = None,
           refresh: bool = False, fingerprint: str = "", types: Iterable[type] = ()) -> Any:
    """The result of :func:`load_or_compute` without the hit flag.

    Args:
        kind: Result family (a file-name prefix).
        settings: JSON-serialisable settings that determine the result.
        compute: Produces the result.
        modules: Import paths of the modules whose code computes the result.
        directory: Cache folder (see :func:`cache_dir`).
        refresh: Recompute even if stored.
        fingerprint: Fingerprint of the model parameters and data, when known.
        types: Dataclasses the result may contain.
    """
    return load_or_compute(kind, settings, compute, modules=modules, directory=directory,
                           refresh=refresh, fingerprint=fingerprint, types=types)[0]
