"""Helpers shared by the command modules of ``nets``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nets.engine.budget import LEAST

__all__ = ["add_device_argument", "add_model_seed_argument", "byte_size", "distributed",
           "memory_budget"]


def distributed(func: Callable) -> Callable:
    """Mark a subcommand as able to run under ``torchrun`` (it uses ``args.comm``).

    Args:
        func: The subcommand's ``func(args) -> int``.
    """
    func.distributed = True
    return func


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--device`` (the same flag on every command that computes with torch).

    The value is checked before anything is loaded by
    :func:`nets.engine.distributed.local_device` (``nets``' argument check stores the result in
    ``args.torch_device``): an unknown device or ``cuda`` on a torch without CUDA exits 2 with
    one line saying what to use instead.

    Args:
        p: The (sub)command's parser.
    """
    p.add_argument("--device", default="auto",
                   help="auto (cuda:LOCAL_RANK if there is a GPU, else cpu), cpu, cuda, "
                        "cuda:1, ...")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: use an integer >= 0")
    return value


def add_model_seed_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--model-seed`` (every command that takes ``--model``).

    A zoo model is initialized (and its data drawn) from it; a factory ``module:function`` gets
    it through a ``seed`` or ``generator`` keyword (:func:`nets.zoo.factory.seed_arguments`),
    and a factory with neither refuses any seed but 0.

    Args:
        p: The (sub)command's parser.
    """
    p.add_argument("--model-seed", type=_seed, default=0,
                   help="seed of the model initialization and data (default 0); a factory "
                        "gets it as its 'seed' (or 'generator') keyword")


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


def memory_budget(text: str) -> int | str:
    """An ``argparse`` type for ``--max-memory``: a :func:`byte_size`, or ``least`` (the least
    the Hessian-vector products run in, :data:`nets.engine.budget.LEAST`).

    Args:
        text: ``"least"`` or a memory size.

    Returns:
        ``"least"`` or the size in bytes.

    Raises:
        argparse.ArgumentTypeError: neither.
    """
    if text.strip().lower() == LEAST:
        return LEAST
    try:
        return byte_size(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a memory budget; use bytes, a number with K, M, G or T "
            f"(e.g. 2G), or {LEAST!r} (the least the products run in)") from None
