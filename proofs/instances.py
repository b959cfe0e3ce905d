"""Monte-Carlo instances (numpy Generator, no hypothesis): random block-diagonal problems and
initial points, including the adversarial kinds Theorem 1 is weakest on.

The distributions mirror `quadlab.strategies` (log-uniform block spectra with random scale and
spread, Haar rotations), so hypothesis search and Monte Carlo explore the same space.
"""

from __future__ import annotations

import numpy as np

from quadlab import Problem
from quadlab.cases import haar_orthogonal


def random_problem(rng: np.random.Generator, *, max_blocks: int = 5, max_size: int = 6,
                   max_log10_kappa: float = 4.0, max_log10_block_kappa: float = 3.0,
                   with_h: bool = True) -> Problem:
    """A random block-diagonal PD problem.

    Each block gets log10 spread s ~ U[0, max_log10_block_kappa] and offset
    o ~ U[0, max_log10_kappa − s]; its eigenvalues are 10^(o + s·u), u ~ U[0, 1]. Blocks of very
    different κ_l and scale therefore appear with positive probability.
    """
    if max_blocks < 1 or max_size < 1:
        raise ValueError("max_blocks and max_size must be >= 1")
    if not 0 <= max_log10_block_kappa <= max_log10_kappa:
        raise ValueError("need 0 <= max_log10_block_kappa <= max_log10_kappa")
    n_blocks = int(rng.integers(1, max_blocks + 1))
    spectra, rotations = [], []
    for _ in range(n_blocks):
        size = int(rng.integers(1, max_size + 1))
        spread = rng.uniform(0.0, max_log10_block_kappa)
        low = rng.uniform(0.0, max_log10_kappa - spread)
        frac = rng.uniform(0.0, 1.0, size)
        if size >= 2:  # make the block's κ_l equal 10^spread exactly
            frac[0], frac[-1] = 0.0, 1.0
        spectra.append(10.0 ** (low + spread * frac))
        rotations.append(haar_orthogonal(size, rng))
    d = sum(s.size for s in spectra)
    h = rng.standard_normal(d) if with_h else None
    return Problem.from_spectra(spectra, rotations, h, name="random")


def random_start(problem: Problem, rng: np.random.Generator, *, kind: str = "gaussian"
                 ) -> np.ndarray:
    """An initial point of one of these kinds.

    * "gaussian": w0 ~ N(0, I) (the paper's initialization).
    * "scaled": w0 = w* + s·N(0, I), s log-uniform in [1e-3, 1e3] (the printed Theorem 1 is not
      scale invariant, see `proofs.thm1`).
    * "tiny-gradient": a Gaussian w0 moved so that 1..d chosen coordinates of ∇L(w0) shrink by
      10^-k, k ~ U[1, 8] (huge r).

    Raises:
        ValueError: unknown kind.
    """
    if kind == "gaussian":
        return rng.standard_normal(problem.d)
    if kind == "scaled":
        return problem.w_star + 10.0 ** rng.uniform(-3, 3) * rng.standard_normal(problem.d)
    if kind == "tiny-gradient":
        w0 = rng.standard_normal(problem.d)
        g = problem.grad(w0)
        k = int(rng.integers(1, problem.d + 1))
        idx = rng.choice(problem.d, size=k, replace=False)
        g[idx] *= 10.0 ** -rng.uniform(1.0, 8.0)
        return problem.w_star + problem.solve(g)
    raise ValueError(f"unknown start kind {kind!r}; choose gaussian, scaled or tiny-gradient")


START_KINDS = ("gaussian", "scaled", "tiny-gradient")
