"""Input checks shared by the lab: every bad input becomes a `ValueError` that names the problem.

The numerical kernels (numba) never see unchecked data: a non-symmetric block, a NaN or a wrong
shape would otherwise surface as a numba traceback or, worse, a silently wrong answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

#: what the lab accepts as an array: a number, a (nested) sequence of numbers or an ndarray
ArrayLike: TypeAlias = npt.ArrayLike
#: a seed: an int >= 0, a SeedSequence, or (where documented) a Generator or one int per row
SeedLike: TypeAlias = int | np.random.SeedSequence | np.random.Generator | Sequence[int]

#: Relative asymmetry max|A - Aᵀ| / max|A| tolerated (and then removed by symmetrising).
SYMMETRY_RTOL = 1e-10
#: A block with λ_min <= PD_RTOL · λ_max is rejected as not (numerically) positive definite.
PD_RTOL = 1e-13
#: Largest standard deviation of random initial points (gaps ~ λ std² stay finite).
MAX_POINT = 1e100
#: Largest block entry accepted: ½ eᵀHe must stay finite for errors e up to ~1e50.
MAX_ENTRY = 1e200
#: Fraction of the available memory one run may allocate for its results.
MEMORY_FRACTION = 0.5


def as_float_array(x: Any, *, name: str, ndim: int | None = None,
                   finite: bool = True) -> np.ndarray:
    """Convert `x` to a finite real float64 array, checking its number of dimensions.

    `finite=False` lets NaN and ±inf through (for gap trajectories, which use them).

    Raises:
        TypeError: `x` is None, complex (quadlab's problems are real: pass ``np.real(x)`` if
            the imaginary part is meant to be dropped), or not numeric.
        ValueError: wrong number of dimensions, or a NaN/inf entry.
    """
    if x is None:
        raise TypeError(f"{name} must be a number or an array of numbers, got None")
    if isinstance(x, str | bytes) or (isinstance(x, np.ndarray) and x.dtype.kind in "OUSV"):
        raise TypeError(f"{name} must be numeric, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else ""))
    if _is_complex(x):
        raise TypeError(f"{name} is complex; quadlab's quadratics are real (a complex Hermitian "
                        f"matrix is not supported): pass real numbers, e.g. np.real({name}) if "
                        "the imaginary part is zero")
    try:
        arr = np.array(x, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name} must be numeric (a number or a regular array of numbers), "
                        f"got {type(x).__name__}") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf, or a number "
                         "beyond float64's range); pass finite numbers")
    return arr


def _is_complex(x: Any) -> bool:
    """Whether `x` is or holds a complex number (np.array would drop its imaginary part with
    only a warning)."""
    if isinstance(x, list | tuple):
        return _has_complex(x)
    return isinstance(x, complex | np.complexfloating) or (
        isinstance(x, np.ndarray) and x.dtype.kind == "c")


def _has_complex(x: list | tuple, depth: int = 0) -> bool:
    """Whether a nested list/tuple holds a complex number (np.array would drop its imaginary
    part with only a warning)."""
    if depth > 32:
        return False
    for item in x:
        if isinstance(item, complex | np.complexfloating):
            return True
        if isinstance(item, np.ndarray) and np.iscomplexobj(item):
            return True
        if isinstance(item, list | tuple) and _has_complex(item, depth + 1):
            return True
    return False


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
    if scale > MAX_ENTRY:
        raise ValueError(f"{name} has an entry of magnitude {scale:.3g}, above {MAX_ENTRY:g}: "
                         "gradients and loss gaps would overflow float64; rescale the problem")
    unit = a / scale  # compare and symmetrise at unit scale: no overflow near 1e308
    asym = float(np.max(np.abs(unit - unit.T)))
    if asym > SYMMETRY_RTOL:
        raise ValueError(
            f"{name} is not symmetric: max|A - Aᵀ| = {asym * scale:.3g} exceeds "
            f"{SYMMETRY_RTOL:g} × max|A| = {SYMMETRY_RTOL * scale:.3g}"
        )
    a = 0.5 * a + 0.5 * a.T
    lam, q = np.linalg.eigh(a)
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(q))):
        raise ValueError(f"{name}: its eigendecomposition is not finite; rescale the block")
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


def check_choice(value: Any, choices: Iterable[str], *, what: str) -> str:
    """Return `value` if it is one of `choices`, else raise a ValueError listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_positive(value: Any, *, name: str) -> float:
    """A finite, strictly positive float.

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite or <= 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def as_real(value: Any, *, name: str) -> float:
    """A real number (int, float, numpy scalar or 0-d array) as a float; NaN/inf pass through
    (the caller checks the range). Bools, strings, sequences and complex numbers are refused.

    Raises:
        TypeError: naming `name`.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, bool | np.bool_) or not isinstance(
            value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def as_sequence(value: Any, *, name: str, of: str = "items") -> list:
    """A non-empty list from a list, tuple or 1-D array (strings and scalars refused).

    Raises:
        TypeError: not a list, tuple or 1-D array.
        ValueError: empty.
    """
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise TypeError(f"{name} must be a sequence of {of}, got an array of shape "
                            f"{value.shape}")
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise TypeError(f"{name} must be a list or tuple of {of}, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is empty; pass at least one of the {of}")
    return list(value)


def check_steps(steps: Any) -> int:
    """A non-negative integer number of iterations."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    return int(steps)


def check_count(value: Any, *, name: str, minimum: int = 1) -> int:
    """An integer >= `minimum` (bools refused: `True` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seed(seed: Any, *, name: str = "seed") -> Any:
    """An int >= 0, a `numpy.random.SeedSequence` or a `numpy.random.Generator`, returned as is.

    Raises:
        TypeError: another type (bools included).
        ValueError: a negative int, named in the message.
    """
    if isinstance(seed, np.random.SeedSequence | np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"{name} must be an int >= 0, a numpy SeedSequence or Generator, got "
                        f"{type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}; pass a non-negative integer")
    return seed


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable; total RAM as fallback)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def check_memory(nbytes: int, *, what: str, fix: str) -> None:
    """Refuse an allocation of `nbytes` above `MEMORY_FRACTION` of the available memory.

    Raises:
        ValueError: with the estimate, what is available, and `fix`.
    """
    avail = available_memory()
    if nbytes > MEMORY_FRACTION * avail:
        raise ValueError(f"{what} needs about {nbytes / 2**30:.3g} GiB, more than "
                         f"{MEMORY_FRACTION:.0%} of the {avail / 2**30:.3g} GiB available; {fix}")
