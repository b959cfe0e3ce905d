"""Hypothesis strategies for block-diagonal quadratics, for testing conjectures in a few lines.

Example:
    >>> from hypothesis import given
    >>> import quadlab, quadlab.strategies as qs
    >>> @given(qs.problems_with_start())
    ... def test_gd_decreases(case):
    ...     problem, w0 = case
    ...     gaps = quadlab.run(problem, "gd", lr=1 / problem.all_eigenvalues[-1], w0=w0, steps=5)
    ...     assert (gaps[1:] <= gaps[:-1] * (1 + 1e-12)).all()
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .cases import haar_orthogonal
from .problem import Problem


@st.composite
def block_spectra(draw, *, min_blocks: int = 1, max_blocks: int = 4, min_size: int = 1,
                  max_size: int = 5, max_log10_kappa: float = 4.0,
                  max_log10_block_kappa: float | None = None) -> list[np.ndarray]:
    """Eigenvalues of each block, log-uniform inside [1, 10^max_log10_kappa].

    Each block gets a random scale and a random spread (its log10 κ_l is at most
    `max_log10_block_kappa`, default `max_log10_kappa`), so the strategy covers homogeneous and
    strongly heterogeneous block structures alike.

    Args:
        min_blocks: Fewest blocks.
        max_blocks: Most blocks.
        min_size: Smallest block size.
        max_size: Largest block size.
        max_log10_kappa: log10 of the largest eigenvalue (the smallest is >= 1).
        max_log10_block_kappa: Largest log10 κ_l of one block (default ``max_log10_kappa``).
    """
    cap = max_log10_kappa if max_log10_block_kappa is None else max_log10_block_kappa
    n_blocks = draw(st.integers(min_blocks, max_blocks))
    spectra = []
    for _ in range(n_blocks):
        size = draw(st.integers(min_size, max_size))
        spread = draw(st.floats(0.0, min(cap, max_log10_kappa)))
        low = draw(st.floats(0.0, max_log10_kappa - spread))
        fractions = draw(st.lists(st.floats(0.0, 1.0), min_size=size, max_size=size))
        spectra.append(10.0 ** (low + spread * np.asarray(fractions)))
    return spectra


@st.composite
def problems(draw: st.DrawFn, *, rotate: bool = True, with_h: bool = True,
             **spectra_options: int | float) -> Problem:
    """A `Problem` with blocks Q_l diag(λ_l) Q_lᵀ (Q_l Haar-random if `rotate`, else I).

    `spectra_options` go to `block_spectra` (min_blocks, max_blocks, min_size, max_size,
    max_log10_kappa, max_log10_block_kappa).

    Args:
        draw: Hypothesis' draw function (supplied by ``@st.composite``).
        rotate: Rotate each block by a Haar-random orthogonal matrix.
        with_h: Draw a nonzero linear term h.
        **spectra_options: Passed to :func:`block_spectra`.
    """
    spectra = draw(block_spectra(**spectra_options))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rotations = [haar_orthogonal(len(s), rng) if rotate else np.eye(len(s)) for s in spectra]
    d = sum(len(s) for s in spectra)
    h = rng.standard_normal(d) if with_h else None
    return Problem.from_spectra(spectra, rotations, h, name="hypothesis")


def with_shrunk_gradient(problem: Problem, w0: np.ndarray, idx: np.ndarray,
                         shrink: float) -> np.ndarray:
    """The point whose gradient is ∇L(w0) with the coordinates ``idx`` multiplied by ``shrink``:
    since ∇L(w) = H(w − w*), it is ``w* + H⁻¹ t`` for the target gradient ``t``.

    Args:
        problem: The quadratic.
        w0: Starting point.
        idx: Coordinates to shrink.
        shrink: Factor in (0, 1].
    """
    if not 0 < shrink <= 1:
        raise ValueError(f"shrink must lie in (0, 1], got {shrink!r}")
    target = problem.grad(w0)
    target[np.asarray(idx)] *= shrink
    return problem.w_star + problem.solve(target)


@st.composite
def initial_points(draw, problem: Problem, *, adversarial: bool = False) -> np.ndarray:
    """A Gaussian initial point for `problem`; `adversarial=True` may also shrink some gradient
    coordinates by up to 1e-6 (moving w0 so that chosen coordinates of ∇L(w0) become tiny), the
    hard case for Theorem 1's constant r.

    Args:
        problem: The problem (its dimension and gradient).
        adversarial: Also shrink some gradient coordinates (see above).
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w0 = rng.standard_normal(problem.d)
    if adversarial and draw(st.booleans()):
        k = draw(st.integers(1, problem.d))
        idx = rng.choice(problem.d, size=k, replace=False)
        w0 = with_shrunk_gradient(problem, w0, idx, 10.0 ** -draw(st.floats(1.0, 6.0)))
    return w0


@st.composite
def problems_with_start(draw: st.DrawFn, *, adversarial: bool = False,
                        **problem_options: bool | int | float) -> tuple[Problem, np.ndarray]:
    """A pair (problem, w0) from `problems` and `initial_points`.

    Args:
        draw: Hypothesis' draw function (supplied by ``@st.composite``).
        adversarial: Passed to :func:`initial_points`.
        **problem_options: Passed to :func:`problems`.
    """
    problem = draw(problems(**problem_options))
    return problem, draw(initial_points(problem, adversarial=adversarial))
