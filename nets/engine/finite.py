"""A fast exact test that a tensor holds only finite numbers.

``torch.isfinite(t).all()`` writes a boolean tensor of ``t``'s size and reads it back; on the
products of a Lanczos step (millions of entries, several times per step) that cost more than
the sum that decides it almost always: a sum of finite numbers is finite unless it overflows,
and any NaN or infinity makes the sum NaN or infinite. Only a sum that is not finite needs the
element-wise test, to tell an overflowing sum of finite entries from a non-finite entry.
"""

from __future__ import annotations

import torch

__all__ = ["all_finite"]


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of the floating tensor ``t`` is finite (exactly, not a heuristic).

    Args:
        t: A real floating tensor (any shape; an empty tensor is finite).

    Returns:
        ``True`` when no entry is NaN or ±∞: the sum ``Σ t_i`` is finite (one reduction), or,
        when it is not (overflow, or a non-finite entry), ``torch.isfinite(t).all()`` says so.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())
