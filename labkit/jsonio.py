"""The one JSON policy of the project: numpy types become plain numbers, non-finite floats strings.

JSON has no infinity or NaN. Everything this project writes as JSON (command-line ``--json``
output, results files, caches, the report's data) goes through :func:`to_jsonable` /
:func:`dumps`, so the rule is the same everywhere:

* ``float('inf')``, ``-inf`` and ``nan`` become the strings ``"inf"``, ``"-inf"`` and ``"nan"``
  (never ``null``, which loses the sign, and never the bare ``Infinity`` that Python's ``json``
  writes and other parsers refuse); :func:`as_float` reads them back;
* numpy scalars become Python ``int``/``float``/``bool``, arrays and tuples become lists;
* dataclasses become dicts of their fields, paths strings, mapping keys strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np

__all__ = ["NONFINITE", "as_float", "check_sealed", "content_checksum", "dumps", "load_file",
           "loads", "seal", "to_jsonable"]

#: The strings that stand for the non-finite floats.
NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def to_jsonable(x: Any) -> Any:
    """``x`` as plain JSON values under the project's policy (see the module docstring).

    Args:
        x: Any nesting of dicts, lists, tuples, dataclass instances, numpy arrays and scalars,
            Python numbers, strings, booleans, ``None`` and paths.

    Returns:
        The same structure made of ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and
        ``None`` only, with every float finite.

    Raises:
        TypeError: ``x`` contains an object with no JSON form (the message names its type).
    """
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        v = float(x)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [to_jsonable(v) for v in x.tolist()]
    if isinstance(x, PurePath):
        return str(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    raise TypeError(f"cannot write a {type(x).__name__} as JSON: convert it to numbers, "
                    "strings, lists or dicts first")


def dumps(x: Any, **kwargs: Any) -> str:
    """Strict JSON text of :func:`to_jsonable` ``(x)`` (``kwargs`` go to :func:`json.dumps`).

    Args:
        x: Any value :func:`to_jsonable` accepts.
        **kwargs: Passed to :func:`json.dumps` (e.g. ``indent``).
    """
    return json.dumps(to_jsonable(x), allow_nan=False, **kwargs)


def loads(text: str | bytes) -> Any:
    """Parse strict JSON text; bare ``NaN``/``Infinity`` (not JSON) are refused with a ValueError.

    Non-finite values stay as their strings: read numeric fields with :func:`as_float`.

    Args:
        text: JSON text.
    """
    def _refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: bare {name} (non-finite numbers are written as "
                         '"inf", "-inf" or "nan" strings)')

    return json.loads(text, parse_constant=_refuse)


def load_file(path: str | Path, fix: str, *, missing: str | None = None) -> Any:
    """Parse a file of strict JSON (:func:`loads`), refusing a bad one with a message that
    names it, what is wrong and how to get a good one.

    Args:
        path: The file.
        fix: How to get a good one (e.g. the command that writes it), appended to the message.
        missing: The whole message where there is no such file (default: ``no file at PATH;``
            and ``fix``).

    Raises:
        ValueError: no such file, unreadable, not UTF-8 or not strict JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(missing or f"no file at {path}; {fix}")
    try:
        return loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not JSON ({e}); {fix}") from e


def as_float(v: Any) -> float:
    """A numeric JSON field as a float: a number, or one of "inf", "-inf", "nan".

    Args:
        v: The field's value.

    Raises:
        ValueError: ``v`` is neither a number nor one of those strings.
    """
    if isinstance(v, bool) or v is None:
        raise ValueError(f"expected a number, got {v!r}")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str) and v in NONFINITE:
        return NONFINITE[v]
    raise ValueError(f"expected a number or one of {sorted(NONFINITE)}, got {v!r}")


def content_checksum(doc: Mapping[str, Any]) -> str:
    """SHA-256 of a document's canonical JSON, leaving out its own ``"checksum"`` key.

    Canonical: :func:`to_jsonable`, keys sorted, no whitespace choices beyond :func:`json.dumps`'
    defaults, so the same content always gives the same digest whatever the indentation of the
    file it was read from.

    Args:
        doc: A JSON object (a mapping with string keys).

    Returns:
        64 hex digits.
    """
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(to_jsonable(body), sort_keys=True,
                                     allow_nan=False).encode()).hexdigest()


def seal(doc: Mapping[str, Any]) -> dict:
    """``doc`` (made JSON-able) with a ``"checksum"`` of its content (:func:`content_checksum`).

    Args:
        doc: A JSON object.

    Returns:
        A new dict; write it with :func:`dumps`, verify it after reading with
        :func:`check_sealed`.
    """
    body = to_jsonable({k: v for k, v in doc.items() if k != "checksum"})
    body["checksum"] = content_checksum(body)
    return body


def check_sealed(doc: Any, where: str, fix: str) -> None:
    """Refuse a document whose ``"checksum"`` is missing or does not match its content.

    Args:
        doc: The parsed document.
        where: What it is, for the message (e.g. the file's path).
        fix: How to get a good one (e.g. the command that regenerates it).

    Raises:
        ValueError: not a JSON object, no checksum, or a checksum that does not match (the file
            was damaged or edited by hand); the message names ``where`` and ``fix``.
    """
    if not isinstance(doc, Mapping):
        raise ValueError(f"{where}: not a JSON object; {fix}")
    if "checksum" not in doc:
        raise ValueError(f"{where}: no checksum (written by an older version, or not one of "
                         f"this package's files); {fix}")
    if doc["checksum"] != content_checksum(doc):
        raise ValueError(f"{where}: checksum mismatch (the file was damaged or edited); {fix}")
