"""Input checks shared by the lab: every bad input becomes a `ValueError` that names the problem.

The numerical kernels (numba) never see unchecked data: a non-symmetric block, a NaN or a wrong
shape would otherwise surface as a numba traceback or, worse, a silently wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: Relative asymmetry max|A - Aᵀ| / max|A| tolerated (and then removed by symmetrising).
SYMMETRY_RTOL = 1e-10
#: A block with λ_min <= PD_RTOL · λ_max is rejected as not (numerically) positive definite.
PD_RTOL = 1e-13


def as_float_array(x, *, name: str, ndim: int | None = None) -> np.ndarray:
    """Convert `x` to a finite float64 array, checking its number of dimensions."""
    try:
        arr = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {type(x).__name__}") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
    return arr


def check_spd_block(block, *, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one Hessian block and return it symmetrised with its eigendecomposition.

    Args:
        block: a square, symmetric, positive-definite matrix.
        index: position of the block, used in error messages.

    Returns:
        `(A, eigenvalues, eigenvectors)` with eigenvalues ascending, `A = Q diag(λ) Qᵀ`.

    Raises:
        ValueError: if the block is not square, not finite, not symmetric to `SYMMETRY_RTOL`
            relative to its largest entry, or not positive definite (λ_min <= PD_RTOL · λ_max).
    """
    name = f"block {index}"
    a = as_float_array(block, name=name)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {a.shape}")
    scale = float(np.max(np.abs(a)))
    if scale == 0.0:
        raise ValueError(f"{name} is the zero matrix, which is not positive definite")
    asym = float(np.max(np.abs(a - a.T)))
    if asym > SYMMETRY_RTOL * scale:
        raise ValueError(
            f"{name} is not symmetric: max|A - Aᵀ| = {asym:.3g} exceeds "
            f"{SYMMETRY_RTOL:g} × max|A| = {SYMMETRY_RTOL * scale:.3g}"
        )
    a = 0.5 * (a + a.T)
    lam, q = np.linalg.eigh(a)
    if lam[0] <= PD_RTOL * lam[-1]:
        raise ValueError(
            f"{name} is not positive definite: smallest eigenvalue {lam[0]:.6g} "
            f"(largest {lam[-1]:.6g})"
        )
    return a, lam, q


def check_options(given: dict, allowed: Iterable[str], *, what: str) -> None:
    """Reject keyword options that `what` does not take, naming them and the allowed ones."""
    allowed = tuple(allowed)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        known = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for {what}; "
                         f"allowed: {known}")


def check_choice(value: str, choices: Iterable[str], *, what: str) -> str:
    """Return `value` if it is one of `choices`, else raise a ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_positive(value, *, name: str) -> float:
    """A finite, strictly positive float."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def check_steps(steps) -> int:
    """A non-negative integer number of iterations."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    return int(steps)
