"""Seed 004: Adam's ε interpolates between sign descent (ε → 0) and SGD (ε → ∞).

With β1 = 0 and β2 = 0 Adam's update is exactly the SoftSign step of the seed,
    Δw = −η g / (|g| + ε)   (coordinatewise),
which is η·sign(g) for |g| ≫ ε and (η/ε)·g — gradient descent with step η/ε — for |g| ≪ ε.
With β2 = 1 (the paper's simplified Adam) the denominator is frozen at |g0| + ε, and with
β2 = 0.999 it tracks a long average of g². So ε, measured against the gradient scale
G = median_i |∇L(w0)_i|, moves every variant from sign-like (per-coordinate, blind to the
block scales) to GD-like (one step for all blocks).

`eps_study` measures, on the block-heterogeneous cases with exact gradients, the speed-up of
tuned Adam over tuned GD (iterations to bring the loss gap below `tol` × its start, step
sizes tuned per run on a log grid, excluding step sizes whose gap ever rises above
`MAX_RISE` × its start) as a function of ε/G, for the three variants, plus the
share of coordinates in the sign regime (|g0_i| > ε) — the SoftSign view of each ε.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from quadlab.cases import CASES, make_problem
from quadlab.tuning import reference_step, tune_lr
from quadlab.validation import (
    as_float_array,
    as_real,
    as_sequence,
    check_choice,
    check_positive,
    check_seed,
    check_steps,
)

#: label -> Adam hyper-parameters (β1 = 0 throughout)
EPS_VARIANTS: dict[str, dict] = {
    "softsign (β2=0)": {"beta1": 0.0, "beta2": 0.0},
    "adam β2=0.999": {"beta1": 0.0, "beta2": 0.999},
    "simplified (β2=1)": {"beta1": 0.0, "beta2": 1.0},
}
#: step-size grid: this span around `tuning.reference_step` (which includes ε), log spaced
GRID_SPAN = (1e-4, 1e2)
GRID_POINTS = 49
#: step sizes whose loss gap ever rises above this multiple of its start are not eligible: with
#: β2 < 1 a huge step can blow the gap up ~1e10×, inflate v, and then converge in a few dozen
#: steps — a real effect (Proposition 2's non-convergence) but not the ε interpolation studied here
MAX_RISE = 10.0


def softsign(g: np.ndarray, eps: float) -> np.ndarray:
    """The SoftSign map g / (|g| + ε) of seed 004 (the β1 = β2 = 0 Adam direction).

    Args:
        g: gradient entries (finite reals), any shape.
        eps: ε >= 0 (ε = 0 gives sign(g), with sign(0) = 0).

    Returns:
        g / (|g| + ε), same shape as g.

    Raises:
        TypeError, ValueError: g not finite real numbers, eps not a finite real >= 0.
    """
    g = as_float_array(g, name="g")
    eps = as_real(eps, name="eps")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    with np.errstate(invalid="ignore", over="ignore"):
        out = g / (np.abs(g) + eps)
    return np.where(g == 0, 0.0, out)  # 0/0 at g = 0 with ε = 0: the sign of 0 is 0


@dataclass(frozen=True)
class EpsRow:
    """One tuned Adam run: case, seed, variant, ε/G, ε, lr, iterations, speed-up over GD."""

    case: str
    seed: int
    variant: str
    rel_eps: float
    eps: float
    sign_share: float
    lr: float
    iterations: float
    gd_iterations: float
    speedup: float
    at_edge: bool


@dataclass(frozen=True)
class EpsResult:
    """All rows, the sign-descent reference, and the settings."""

    rows: tuple[EpsRow, ...]
    sign_iterations: dict
    cases: tuple[str, ...]
    seeds: tuple[int, ...]
    rel_eps: tuple[float, ...]
    steps: int
    tol: float

    def median_speedup(self, case: str, variant: str) -> np.ndarray:
        """Median over seeds of the GD/Adam iteration ratio, one entry per ε/G.

        Args:
            case: the Hessian case.
            variant: the Adam variant (a key of `EPS_VARIANTS`).
        """
        return np.array([np.median([r.speedup for r in self.rows if r.case == case
                                    and r.variant == variant and r.rel_eps == re])
                         for re in self.rel_eps])

    def summary(self) -> dict:
        """JSON-ready settings, rows and medians."""
        medians = {case: {v: self.median_speedup(case, v).tolist() for v in EPS_VARIANTS}
                   for case in self.cases}
        return {"steps": self.steps, "tol": self.tol, "seeds": list(self.seeds),
                "rel_eps": list(self.rel_eps), "rows": [dict(r.__dict__) for r in self.rows],
                "median_speedup": medians,
                "sign_gd_iterations": {c: list(v) for c, v in self.sign_iterations.items()}}


def _ratio(a: float, b: float) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(a) / np.float64(b))


def eps_study(*, cases: Sequence[str] = ("hetero", "transformer"), seeds: Sequence[int] = (0,),
              rel_eps: Sequence[float] = tuple(10.0 ** np.arange(-4, 5)),
              steps: int = 60_000, tol: float = 1e-6,
              progress: Callable[[str], None] | None = None) -> EpsResult:
    """Tuned GD vs tuned Adam variants across ε = rel_eps × G (see the module docstring).

    Args:
        cases: Hessian cases (`quadlab.make_problem`).
        seeds: problem and initial-point seeds.
        rel_eps: ε / G values, G = median |∇L(w0)|.
        steps: iteration budget.
        tol: relative loss gap to reach.
        progress: called after each tuned run.

    Raises:
        TypeError, ValueError: empty or malformed cases, seeds or rel_eps; bad steps or tol.

    Returns:
        An `EpsResult`; speed-up = GD iterations / Adam iterations (+inf if only GD failed to
        reach tol, 0 if only Adam failed, NaN if neither did).
    """
    cases = [check_choice(c, CASES, what="case") for c in as_sequence(cases, name="cases",
                                                                       of="case names")]
    seeds = [check_seed(x) for x in as_sequence(seeds, name="seeds", of="ints >= 0")]
    rel_eps = as_float_array(as_sequence(rel_eps, name="rel_eps", of="positive ε/G values"),
                             name="rel_eps", ndim=1)
    if np.any(rel_eps <= 0):
        raise ValueError(f"rel_eps must hold values > 0, got min {rel_eps.min():g}")
    steps = check_steps(steps)
    tol = check_positive(tol, name="tol")
    rows, sign_iters = [], {}
    for case in cases:
        sign_iters[case] = []
        for seed in seeds:
            problem = make_problem(case, seed=seed)
            w0 = problem.initial_points(seed=seed)
            g0 = np.abs(problem.grad(w0))
            scale = float(np.median(g0))
            gd = tune_lr(problem, "gd", w0=w0, steps=steps, tol=tol)
            sign = tune_lr(problem, "sign-gd", w0=w0, steps=steps, tol=tol)
            sign_iters[case].append(sign.best_iterations)
            for re in rel_eps:
                eps = float(re) * scale
                for label, hyper in EPS_VARIANTS.items():
                    ref = reference_step(problem, "adam", w0=w0, steps=steps, eps=eps, **hyper)
                    grid = ref * np.geomspace(*GRID_SPAN, GRID_POINTS)
                    res = tune_lr(problem, "adam", w0=w0, steps=steps, tol=tol, grid=grid,
                                  eps=eps, max_rise=MAX_RISE, **hyper)
                    rows.append(EpsRow(case, int(seed), label, float(re), eps,
                                       float(np.mean(g0 > eps)), res.lr, res.best_iterations,
                                       gd.best_iterations,
                                       _ratio(gd.best_iterations, res.best_iterations),
                                       res.at_edge))
                    if progress is not None:
                        progress(f"{case} seed {seed} ε/G={re:g} {label}")
    return EpsResult(tuple(rows), sign_iters, tuple(cases), tuple(int(s) for s in seeds),
                     tuple(float(r) for r in rel_eps), steps, tol)
