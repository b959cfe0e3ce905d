"""Helpers shared by the command modules of ``nets``."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["distributed"]


def distributed(func: Callable) -> Callable:
    """Mark a subcommand as able to run under ``torchrun`` (it uses ``args.comm``)."""
    func.distributed = True
    return func
