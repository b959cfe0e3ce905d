"""The block-diagonal quadratic L(w) = ½ wᵀHw − hᵀw with H = diag(H_1, …, H_L) positive definite.

This is the object of the paper's §3 (its Eq. (1)): every optimizer, constant and proof in the lab
takes a `Problem`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .validation import (
    MAX_ENTRY,
    MAX_POINT,
    PD_RTOL,
    ArrayLike,
    as_float_array,
    check_positive,
    check_seed,
    check_spd_block,
)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Problem:
    """A strongly convex quadratic with a block-diagonal Hessian.

    Build one with `Problem.from_blocks` (checked) or `quadlab.make_problem` (the paper's cases).

    Attributes:
        name: label used in tables and figures.
        eigenvalues: per block, the eigenvalues of H_l in ascending order.
        eigenvectors: per block, orthonormal Q_l with H_l = Q_l diag(λ_l) Q_lᵀ.
        h: the linear term, shape (d,).
    """

    _blocks: tuple[np.ndarray, ...]
    eigenvalues: tuple[np.ndarray, ...]
    eigenvectors: tuple[np.ndarray, ...]
    h: np.ndarray
    name: str = "custom"

    @classmethod
    def from_blocks(cls, blocks: Sequence[ArrayLike] | np.ndarray, h: ArrayLike | None = None,
                    *, name: str = "custom") -> Problem:
        """Check user blocks and build the problem.

        Args:
            blocks: sequence of square symmetric positive-definite matrices H_1 … H_L.
            h: linear term of shape (d,), d = Σ d_l; zeros if omitted (then w* = 0).
            name: label for tables and figures.

        Raises:
            ValueError: naming the first defect (non-square, non-symmetric, indefinite, non-finite
                block; wrong shape or non-finite h).
        """
        if isinstance(blocks, np.ndarray) and blocks.ndim == 2:
            blocks = [blocks]
        if isinstance(blocks, str | bytes) or not hasattr(blocks, "__iter__"):
            raise TypeError(f"blocks must be a sequence of square matrices, got "
                            f"{type(blocks).__name__}")
        blocks = list(blocks)
        if not blocks:
            raise ValueError("blocks must contain at least one block")
        checked = [check_spd_block(b, index=i) for i, b in enumerate(blocks)]
        d = sum(a.shape[0] for a, _, _ in checked)
        if h is None:
            h_arr = np.zeros(d)
        else:
            h_arr = as_float_array(h, name="h", ndim=1)
            if h_arr.shape != (d,):
                raise ValueError(f"h must have shape ({d},) to match the blocks, got {h_arr.shape}")
        return cls(
            _blocks=tuple(_readonly(a) for a, _, _ in checked),
            eigenvalues=tuple(_readonly(lam) for _, lam, _ in checked),
            eigenvectors=tuple(_readonly(q) for _, _, q in checked),
            h=_readonly(h_arr),
            name=name,
        )

    @classmethod
    def from_spectra(cls, eigenvalues: Sequence[ArrayLike], eigenvectors: Sequence[ArrayLike],
                     h: ArrayLike | None = None, *, name: str = "custom") -> Problem:
        """Build H_l = Q_l diag(λ_l) Q_lᵀ from exact eigenpairs, keeping the eigenvalues exact.

        Args:
            eigenvalues: per block, positive eigenvalues λ_l (any order).
            eigenvectors: per block, an orthogonal matrix Q_l (columns are eigenvectors).
            h: linear term of shape (d,); zeros if omitted.
            name: label for tables and figures.

        Raises:
            ValueError: non-positive or non-finite eigenvalues, non-orthogonal Q_l, shape mismatch.
        """
        for arg, what in ((eigenvalues, "eigenvalues"), (eigenvectors, "eigenvectors")):
            if isinstance(arg, str | bytes) or not hasattr(arg, "__iter__"):
                raise TypeError(f"{what} must be a sequence with one entry per block, got "
                                f"{type(arg).__name__}")
        lams, qs = list(eigenvalues), list(eigenvectors)
        if not lams or len(lams) != len(qs):
            raise ValueError("need one eigenvector matrix per block and at least one block")
        blocks, sorted_lams, sorted_qs = [], [], []
        for i, (lam, q) in enumerate(zip(lams, qs, strict=True)):
            lam = as_float_array(lam, name=f"eigenvalues of block {i}", ndim=1)
            q = as_float_array(q, name=f"eigenvectors of block {i}", ndim=2)
            if lam.size == 0:
                raise ValueError(f"eigenvalues of block {i} is empty: every block needs at least "
                                 "one eigenvalue (d_l >= 1)")
            if lam.max() > MAX_ENTRY:
                raise ValueError(f"eigenvalues of block {i} reach {lam.max():.3g}, above "
                                 f"{MAX_ENTRY:g}: gaps would overflow float64; rescale")
            if q.shape != (lam.size, lam.size):
                raise ValueError(f"eigenvectors of block {i} must have shape "
                                 f"{(lam.size, lam.size)}, got {q.shape}")
            if np.any(lam <= 0) or lam.min() <= PD_RTOL * lam.max():
                raise ValueError(f"block {i} is not positive definite: eigenvalue {lam.min():.6g} "
                                 f"(largest {lam.max():.6g}, ratio must exceed {PD_RTOL:g})")
            if not np.allclose(q.T @ q, np.eye(lam.size), rtol=0, atol=1e-10):
                raise ValueError(f"eigenvectors of block {i} are not orthonormal")
            order = np.argsort(lam)
            lam, q = lam[order], q[:, order]
            b = (q * lam) @ q.T
            blocks.append(0.5 * (b + b.T))
            sorted_lams.append(lam)
            sorted_qs.append(q)
        d = sum(lam.size for lam in sorted_lams)
        h_arr = np.zeros(d) if h is None else as_float_array(h, name="h", ndim=1)
        if h_arr.shape != (d,):
            raise ValueError(f"h must have shape ({d},) to match the blocks, got {h_arr.shape}")
        return cls(
            _blocks=tuple(_readonly(b) for b in blocks),
            eigenvalues=tuple(_readonly(lam) for lam in sorted_lams),
            eigenvectors=tuple(_readonly(q) for q in sorted_qs),
            h=_readonly(h_arr),
            name=name,
        )

    # ----------------------------------------------------------------- structure
    @property
    def blocks(self) -> list[np.ndarray]:
        """The diagonal blocks H_l (read-only dense symmetric arrays)."""
        return list(self._blocks)

    @property
    def n_blocks(self) -> int:
        """L, the number of blocks."""
        return len(self._blocks)

    @property
    def block_sizes(self) -> tuple[int, ...]:
        """(d_1, …, d_L)."""
        return tuple(b.shape[0] for b in self._blocks)

    @property
    def d(self) -> int:
        """Dimension d = Σ_l d_l."""
        return sum(self.block_sizes)

    @cached_property
    def block_slices(self) -> tuple[slice, ...]:
        """Coordinate slice of each block inside w."""
        edges = np.concatenate([[0], np.cumsum(self.block_sizes)])
        return tuple(slice(int(a), int(b)) for a, b in itertools.pairwise(edges))

    @cached_property
    def block_index(self) -> np.ndarray:
        """For each coordinate, the index l of its block; shape (d,)."""
        return np.repeat(np.arange(self.n_blocks), self.block_sizes)

    def hessian(self) -> np.ndarray:
        """The dense d×d Hessian H (for small problems and tests)."""
        out = np.zeros((self.d, self.d))
        for sl, b in zip(self.block_slices, self._blocks, strict=True):
            out[sl, sl] = b
        return out

    # ----------------------------------------------------------------- spectra
    @cached_property
    def all_eigenvalues(self) -> np.ndarray:
        """Every eigenvalue of H, ascending."""
        return np.sort(np.concatenate(self.eigenvalues))

    @property
    def kappa(self) -> float:
        """κ = λ_max(H) / λ_min(H)."""
        lam = self.all_eigenvalues
        return float(lam[-1] / lam[0])

    @property
    def kappa_blocks(self) -> np.ndarray:
        """κ_l = cond(H_l) for each block, shape (L,)."""
        return np.array([lam[-1] / lam[0] for lam in self.eigenvalues])

    @property
    def lambda_max_blocks(self) -> np.ndarray:
        """λ_{l,1}, the largest eigenvalue of each block, shape (L,)."""
        return np.array([lam[-1] for lam in self.eigenvalues])

    @property
    def lambda_min_blocks(self) -> np.ndarray:
        """The smallest eigenvalue of each block, shape (L,)."""
        return np.array([lam[0] for lam in self.eigenvalues])

    # ----------------------------------------------------------------- the function
    def solve(self, rhs: ArrayLike) -> np.ndarray:
        """H⁻¹ rhs for rhs of shape (..., d), blockwise through the eigendecompositions.

        Args:
            rhs: right-hand side(s), shape (..., d).
        """
        rhs = as_float_array(rhs, name="rhs")
        self._check_last_axis(rhs, "rhs")
        out = np.empty_like(rhs)
        for sl, lam, q in zip(self.block_slices, self.eigenvalues, self.eigenvectors, strict=True):
            out[..., sl] = ((rhs[..., sl] @ q) / lam) @ q.T
        return out

    @cached_property
    def w_star(self) -> np.ndarray:
        """The minimiser w* = H⁻¹h."""
        return _readonly(self.solve(self.h))

    @property
    def loss_star(self) -> float:
        """L* = L(w*) = −½ hᵀw*."""
        return float(-0.5 * self.h @ self.w_star)

    def matvec(self, x: ArrayLike) -> np.ndarray:
        """H x for x of shape (..., d) (blockwise, broadcasting over leading axes).

        Args:
            x: vectors, shape (..., d).

        Raises:
            TypeError, ValueError: x not real numeric, not finite, of the wrong last dimension,
                or so large that H x overflows float64.
        """
        x = as_float_array(x, name="x")
        self._check_last_axis(x, "x")
        out = np.empty_like(x)
        with np.errstate(over="ignore", invalid="ignore"):
            for sl, b in zip(self.block_slices, self._blocks, strict=True):
                out[..., sl] = x[..., sl] @ b  # b is symmetric
        _check_finite(out, "H x")
        return out

    def grad(self, w: ArrayLike) -> np.ndarray:
        """∇L(w) = Hw − h, for w of shape (..., d).

        Args:
            w: points, shape (..., d).
        """
        return self.matvec(as_float_array(w, name="w")) - self.h

    def loss(self, w: ArrayLike) -> np.ndarray | float:
        """L(w) = ½ wᵀHw − hᵀw, for w of shape (..., d).

        Args:
            w: points, shape (..., d).
        """
        w = as_float_array(w, name="w")
        with np.errstate(over="ignore", invalid="ignore"):
            val = 0.5 * np.sum(w * self.matvec(w), axis=-1) - w @ self.h
        _check_finite(val, "L(w)")
        return float(val) if np.ndim(val) == 0 else val

    def gap(self, w: ArrayLike) -> np.ndarray | float:
        """L(w) − L* = ½ (w − w*)ᵀ H (w − w*), computed without cancellation; shape (...).

        Args:
            w: points, shape (..., d).
        """
        w = as_float_array(w, name="w")
        self._check_last_axis(w, "w")
        with np.errstate(over="ignore", invalid="ignore"):
            e = w - self.w_star
            val = 0.5 * np.sum(e * self.matvec(e), axis=-1)
        _check_finite(val, "the gap L(w) − L*")
        return float(val) if np.ndim(val) == 0 else val

    def initial_points(self, n: int | None = None, *, seed: int | np.random.Generator
                       | np.random.SeedSequence = 0, std: float = 1.0) -> np.ndarray:
        """Standard Gaussian initial points w0 ~ N(0, std² I) (the paper's random init).

        Args:
            n: number of points (>= 1); None returns a single point of shape (d,).
            seed: an int >= 0, a SeedSequence or a Generator (`numpy.random.default_rng`).
            std: standard deviation of each coordinate, finite and > 0.

        Returns:
            Array of shape (d,) or (n, d).

        Raises:
            TypeError: n not an integer, seed of another type.
            ValueError: n < 1, negative seed, std NaN, infinite or <= 0.
        """
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, int | np.integer):
                raise TypeError(f"n must be None or an integer >= 1, got {n!r}")
            if n < 1:
                raise ValueError(f"n must be None or an integer >= 1, got {n}")
        std = check_positive(std, name="std")
        if std > MAX_POINT:
            raise ValueError(f"std must be <= {MAX_POINT:g} (larger points overflow the loss "
                             f"gap in float64), got {std:g}")
        rng = np.random.default_rng(check_seed(seed))
        shape = (self.d,) if n is None else (int(n), self.d)
        return std * rng.standard_normal(shape)

    def _check_last_axis(self, x: np.ndarray, name: str) -> None:
        if x.ndim == 0 or x.shape[-1] != self.d:
            raise ValueError(f"{name} must have last dimension d = {self.d}, got shape {x.shape}")

    def __repr__(self) -> str:
        return (f"Problem(name={self.name!r}, d={self.d}, blocks={list(self.block_sizes)}, "
                f"kappa={self.kappa:.6g})")



def error_gradient(problem: Problem, w0: np.ndarray, *, name: str = "w0"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(e0, g0) = (w0 − w*, H e0) for validated w0 of shape (..., d), refusing a point so far
    from w* that g0 or the gap ½ e0ᵀ g0 overflows float64 (ValueError naming `name`)."""
    with np.errstate(over="ignore", invalid="ignore"):
        e0 = w0 - problem.w_star
        g0 = np.empty_like(e0)
        for sl, b in zip(problem.block_slices, problem.blocks, strict=True):
            g0[..., sl] = e0[..., sl] @ b
        gap = 0.5 * np.sum(e0 * g0, axis=-1)
    if not (np.all(np.isfinite(g0)) and np.all(np.isfinite(gap))):
        raise ValueError(f"{name} is so far from w* that the gradient or the loss gap overflows "
                         "float64; pass a point nearer w* (or rescale the problem)")
    return e0, g0


def _check_finite(value: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{what} overflows float64 (the point is too far from w*); pass "
                         "smaller values")


def check_problem(problem: object) -> Problem:
    """Return `problem` if it is a `Problem`, else raise a TypeError naming what was passed."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a quadlab.Problem (Problem.from_blocks or "
                        f"make_problem), got {type(problem).__name__}")
    return problem
