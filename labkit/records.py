"""Record files: results stored as arrays and metadata only, checked when read back.

No pickle is ever read: a record is an ``.npz`` archive (read with ``allow_pickle=False``) whose
member ``meta`` holds UTF-8 JSON (written by :func:`labkit.jsonio.dumps`) and whose members
``a0``, ``a1``, … hold the numeric arrays of the result. The JSON holds the header (kind,
settings, code version, fingerprint of the inputs), the result as a *tagged tree* and a SHA-256
checksum of everything else::

    {"format": "labkit.record/1", "kind": ..., "settings": ..., "code": ..., "fingerprint": ...,
     "tree": ..., "checksum": sha256(canonical JSON of the rest + every array's dtype, shape and
                                     bytes)}

The tagged tree is plain JSON for dicts with string keys, lists, strings, finite floats, ints,
booleans and ``None``; everything else is one-key objects: ``{"__float__": "nan"}``,
``{"__tuple__": [...]}``, ``{"__dict__": [[key, value], ...]}``, ``{"__array__": i}`` (member
``a{i}``; numeric and boolean dtypes only), ``{"__scalar__": i}`` (a numpy scalar, as a 0-d
array), ``{"__path__": "..."}`` and ``{"__dataclass__": "module.Name", "fields": {...}}``.
Dataclasses are rebuilt only when their class is in the reader's allow-list (``types``), so a
file can never name a class to construct, let alone code to run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from labkit import jsonio
from labkit.atomic import atomic_write_bytes

__all__ = ["FORMAT", "Record", "RecordError", "dataclasses_in", "decode", "encode", "read_record",
           "write_record"]

FORMAT = "labkit.record/1"
_TAGS = ("__float__", "__tuple__", "__dict__", "__array__", "__scalar__", "__path__",
         "__dataclass__")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class RecordError(ValueError):
    """A record file is missing, damaged, foreign or does not match what was asked for."""


@dataclasses.dataclass(frozen=True)
class Record:
    """A record's header and its decoded result.

    Attributes:
        kind: Result family, e.g. ``"train"``.
        settings: The settings the result was computed with (JSON values).
        code: The code version (see :func:`labkit.cache.code_version`).
        fingerprint: Fingerprint of the model parameters and data it came from ("" if none).
        result: The decoded result.
    """

    kind: str
    settings: Any
    code: str
    fingerprint: str
    result: Any


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _allow(types: Iterable[type]) -> dict[str, type]:
    out = {}
    for cls in types:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"types must hold dataclass classes, got {cls!r}")
        out[_type_name(cls)] = cls
    return out


def dataclasses_in(packages: Iterable[str]) -> tuple[type, ...]:
    """Every dataclass defined in the imported modules of ``packages`` (an allow-list).

    Args:
        packages: Top-level import paths, e.g. ``("nets", "figures")``.

    Returns:
        The classes, sorted by their import path (modules not imported yet are not searched).
    """
    prefixes = tuple(packages)
    found = {}
    for name, mod in list(sys.modules.items()):
        if mod is None or not any(name == p or name.startswith(p + ".") for p in prefixes):
            continue
        for obj in list(vars(mod).values()):
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj)
                    and obj.__module__ == name):
                found[_type_name(obj)] = obj
    return tuple(found[k] for k in sorted(found))


def encode(obj: Any, types: Iterable[type] = ()) -> tuple[Any, list[np.ndarray]]:
    """Split ``obj`` into a tagged JSON tree and a list of numeric arrays.

    Args:
        obj: Nesting of dicts, lists, tuples, numbers, strings, ``None``, paths, numpy arrays
            and scalars (numeric or boolean), and instances of the dataclasses in ``types``.
        types: Dataclasses that may appear in ``obj`` (the same allow-list reads it back).

    Returns:
        ``(tree, arrays)``: ``tree`` is JSON-serialisable, ``arrays[i]`` is member ``a{i}``.

    Raises:
        TypeError: ``obj`` holds an object with no record form (named in the message).
    """
    allowed = _allow(types)
    arrays: list[np.ndarray] = []

    def array_ref(a: np.ndarray, tag: str) -> dict:
        if a.dtype.kind not in "biufc":
            raise TypeError(f"cannot store an array of dtype {a.dtype} in a record "
                            "(numeric and boolean arrays only)")
        arrays.append(a if a.flags.c_contiguous else a.copy(order="C"))
        return {tag: len(arrays) - 1}

    def enc(x: Any) -> Any:
        if x is None or isinstance(x, str | bool):
            return x
        if isinstance(x, int) and not isinstance(x, np.integer):
            return x
        if isinstance(x, float) and not isinstance(x, np.floating):
            return x if math.isfinite(x) else {"__float__": repr(x)}
        if isinstance(x, np.ndarray):
            return array_ref(x, "__array__")
        if isinstance(x, np.generic):
            return array_ref(np.asarray(x), "__scalar__")
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {"__dict__": [[enc(k), enc(v)] for k, v in x.items()]}
        if isinstance(x, PurePath):
            return {"__path__": str(x)}
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            name = _type_name(type(x))
            if allowed.get(name) is not type(x):
                raise TypeError(f"cannot store a {name} in a record: add its class to types")
            return {"__dataclass__": name,
                    "fields": {f.name: enc(getattr(x, f.name)) for f in dataclasses.fields(x)}}
        raise TypeError(f"cannot store a {type(x).__module__}.{type(x).__qualname__} in a "
                        "record: convert it to arrays, numbers, strings, lists or dicts")

    return enc(obj), arrays


def decode(tree: Any, arrays: list[np.ndarray], types: Iterable[type] = ()) -> Any:
    """Rebuild the object :func:`encode` split into ``(tree, arrays)``.

    Args:
        tree: The tagged JSON tree.
        arrays: The arrays it refers to.
        types: The dataclasses that may be rebuilt (the allow-list).

    Raises:
        RecordError: malformed tree, unknown tag, array index out of range, or a dataclass not
            in ``types``.
    """
    allowed = _allow(types)

    def arr(i: Any) -> np.ndarray:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(arrays):
            raise RecordError(f"array reference {i!r} out of range")
        return arrays[i]

    def dec(x: Any) -> Any:
        if x is None or isinstance(x, str | bool | int | float):
            return x
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            raise RecordError(f"unexpected {type(x).__name__} in a record tree")
        if not any(k.startswith("__") for k in x):
            return {k: dec(v) for k, v in x.items()}
        tag = next(iter(x))
        if tag not in _TAGS or (len(x) != 1 and tag != "__dataclass__"):
            raise RecordError(f"unknown tag {sorted(x)!r} in a record tree")
        v = x[tag]
        if tag == "__float__":
            if v not in _NONFINITE:
                raise RecordError(f"bad float tag {v!r}")
            return _NONFINITE[v]
        if tag == "__tuple__" and isinstance(v, list):
            return tuple(dec(e) for e in v)
        if tag == "__dict__" and isinstance(v, list):
            if not all(isinstance(e, list) and len(e) == 2 for e in v):
                raise RecordError("bad __dict__ entry in a record tree")
            return {_hashable(dec(k)): dec(w) for k, w in v}
        if tag == "__array__":
            return arr(v)
        if tag == "__scalar__":
            a = arr(v)
            if a.ndim != 0:
                raise RecordError("a scalar reference points at an array")
            return a[()]
        if tag == "__path__" and isinstance(v, str):
            return Path(v)
        if tag == "__dataclass__" and set(x) == {"__dataclass__", "fields"}:
            cls = allowed.get(v) if isinstance(v, str) else None
            if cls is None:
                raise RecordError(f"class {v!r} is not in the allow-list of this reader")
            fields = x["fields"]
            if not isinstance(fields, dict):
                raise RecordError(f"bad fields of {v}")
            init = {f.name for f in dataclasses.fields(cls) if f.init}
            if set(fields) != {f.name for f in dataclasses.fields(cls)}:
                raise RecordError(f"fields of {v} do not match its class")
            values = {k: dec(w) for k, w in fields.items()}
            try:
                obj = cls(**{k: w for k, w in values.items() if k in init})
            except (TypeError, ValueError) as e:
                raise RecordError(f"cannot rebuild {v}: {e}") from e
            for k, w in values.items():
                if k not in init:
                    object.__setattr__(obj, k, w)
            return obj
        raise RecordError(f"malformed {tag} in a record tree")

    return dec(tree)


def _hashable(k: Any) -> Any:
    try:
        hash(k)
    except TypeError as e:
        raise RecordError(f"unhashable dict key {k!r} in a record tree") from e
    return k


def _checksum(meta: Mapping[str, Any], arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, allow_nan=False).encode())
    for i, a in enumerate(arrays):
        h.update(f"|a{i}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes(order="C"))
    return h.hexdigest()


def write_record(path: str | os.PathLike, *, kind: str, settings: Any, code: str,
                 result: Any, fingerprint: str = "", types: Iterable[type] = ()) -> None:
    """Write ``result`` with its header to ``path`` atomically (:mod:`labkit.atomic`).

    Args:
        path: The file (``.npz`` by convention).
        kind: Result family.
        settings: JSON-serialisable settings the result was computed with.
        code: Code version of the modules that computed it.
        result: The result (see :func:`encode`).
        fingerprint: Fingerprint of the model parameters and data it came from.
        types: Dataclasses allowed in ``result``.
    """
    tree, arrays = encode(result, types)
    meta = {"format": FORMAT, "kind": kind, "settings": jsonio.to_jsonable(settings),
            "code": code, "fingerprint": fingerprint, "tree": tree}
    meta["checksum"] = _checksum(meta, arrays)
    buf = io.BytesIO()
    members = {"meta": np.frombuffer(jsonio.dumps(meta).encode(), dtype=np.uint8)}
    members.update({f"a{i}": a for i, a in enumerate(arrays)})
    np.savez(buf, **members)
    atomic_write_bytes(path, buf.getvalue())


def read_record(path: str | os.PathLike, *, types: Iterable[type] = ()) -> Record:
    """Read and check the record at ``path``.

    Checks: a readable ``.npz`` without object arrays, strict JSON metadata of this format, the
    checksum over metadata and arrays, and a well-formed tree whose dataclasses are all in
    ``types``.

    Args:
        path: The record file.
        types: The dataclasses that may be rebuilt (the allow-list).

    Raises:
        RecordError: the file fails any check (the message names the file and the reason).
        FileNotFoundError: no file at ``path``.
    """
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(b"PK\x03\x04"):
        raise RecordError(f"{path}: not a record (not an .npz archive)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            members = {name: z[name] for name in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile,
            zipfile.LargeZipFile, NotImplementedError) as e:
        raise RecordError(f"{path}: not a readable record ({type(e).__name__}: {e})") from e
    try:
        meta_arr = members.pop("meta")
        if meta_arr.dtype != np.uint8 or meta_arr.ndim != 1:
            raise RecordError("bad meta member")
        meta = jsonio.loads(meta_arr.tobytes().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise RecordError(f"not a {FORMAT} file")
        n = len(members)
        if set(members) != {f"a{i}" for i in range(n)}:
            raise RecordError("unexpected members")
        arrays = [members[f"a{i}"] for i in range(n)]
        claimed = meta.pop("checksum", None)
        if claimed != _checksum(meta, arrays):
            raise RecordError("checksum mismatch (damaged or edited)")
        for key, typ in (("kind", str), ("code", str), ("fingerprint", str)):
            if not isinstance(meta.get(key), typ):
                raise RecordError(f"missing or bad {key!r}")
        result = decode(meta["tree"], arrays, types)
    except RecordError as e:
        raise RecordError(f"{path}: {e}") from e
    except (KeyError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise RecordError(f"{path}: {type(e).__name__}: {e}") from e
    return Record(meta["kind"], meta["settings"], meta["code"], meta["fingerprint"], result)
