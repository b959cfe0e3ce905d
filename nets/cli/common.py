"""Helpers shared by the command modules of ``nets``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["byte_size", "distributed"]


def distributed(func: Callable) -> Callable:
    """Mark a subcommand as able to run under ``torchrun`` (it uses ``args.comm``).

    Args:
        func: The subcommand's ``func(args) -> int``.
    """
    func.distributed = True
    return func


_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def byte_size(text: str) -> int:
    """An ``argparse`` type for memory sizes: ``"1500000"``, ``"500M"``, ``"2G"``, ``"1.5GiB"``.

    Args:
        text: A positive number with an optional binary unit (K, M, G, T; ``B``/``iB`` allowed).

    Returns:
        The size in bytes.

    Raises:
        argparse.ArgumentTypeError: not a positive size.
    """
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    try:
        value = float(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        value = -1.0
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size; use bytes or a "
                                         "number with K, M, G or T, e.g. 2G")
    return int(value)
