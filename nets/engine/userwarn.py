"""Warnings that point at the user's code, however deep inside ``nets`` they are raised.

``warnings.warn`` attributes a warning to the frame ``stacklevel`` levels up. A count written
by hand at each call site is right for one entry point only: the same warning reached through
:func:`nets.full_spectrum` (one frame deeper than :func:`nets.blockwise_spectrum`) or a study
pointed into the package. :func:`warn` counts instead, up to the first frame outside ``nets``:
the user's line that called into it (Python 3.12's ``skip_file_prefixes`` does the same; nets
supports 3.11).
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["warn"]


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` attributed to the first frame outside the ``nets`` package.

    Args:
        message: The warning's text.
        category: Its class.
    """
    frame, level = sys._getframe(1), 2  # level 2: this function's caller
    while frame is not None and _in_nets(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _in_nets(frame) -> bool:
    """Whether ``frame`` runs code of the ``nets`` package."""
    name = frame.f_globals.get("__name__", "")
    return name == "nets" or name.startswith("nets.")
