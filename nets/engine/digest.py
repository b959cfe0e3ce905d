"""SHA-256 digests of tensors and of containers of them: whether two runs (or two ranks) hold
the same numbers.

Every tensor contributes its path in the containers (mapping keys in sorted order, sequence
positions), its shape, its dtype and its bytes, so two digests are equal exactly when the
containers hold bitwise equal tensors under the same paths (up to SHA-256 collisions).
:func:`nets.engine.results.fingerprint` digests a model and its data batches for results files;
:class:`nets.engine.hvp.BlockHVP` digests the parameters to check that every data-parallel rank
has the same model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["tensors_digest", "update_digest"]


def update_digest(h: Any, x: object, where: str) -> None:
    """Feed ``x`` into the hash ``h``, every tensor with its path, shape, dtype and bytes.

    Args:
        h: A :mod:`hashlib` hash object.
        x: A tensor, a number, a string, ``None``, or a mapping, list or tuple of them (nested).
        where: ``x``'s path (e.g. ``"model"``), prefixed to its entries' paths.

    Raises:
        TypeError: ``x`` holds something else.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach().contiguous().cpu()
        h.update(f"{where}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(x, Mapping):
        for k in sorted(x, key=str):
            update_digest(h, x[k], f"{where}.{k}")
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            update_digest(h, v, f"{where}[{i}]")
    elif x is None or isinstance(x, bool | int | float | str):
        h.update(f"{where}={x!r};".encode())
    else:
        raise TypeError(f"cannot digest an entry of type {type(x).__name__} in {where}: a "
                        "digest takes tensors, numbers, strings, None, and lists, tuples or "
                        "mappings of them")


def tensors_digest(x: object, where: str = "") -> str:
    """The SHA-256 hex digest of ``x`` (:func:`update_digest`).

    Args:
        x: Tensors, numbers, strings or containers of them.
        where: The root's path.

    Raises:
        TypeError: ``x`` holds something else.
    """
    h = hashlib.sha256()
    update_digest(h, x, where)
    return h.hexdigest()
