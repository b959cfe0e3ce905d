"""Seed 004: the optimal learning rate as a function of batch size, and the "surge".

For SGD the seed's earlier analysis gives η*(B) increasing and saturating in B; for sign-like
updates (SignSGD, Adam with small ε) η*(B) can rise and then *fall* again past a critical batch
size (the "surge" phenomenon); the seed argues that a larger ε makes the surge less likely and
that it disappears as ε → ∞ (Adam → SGD).

Measured here on a stochastic quadratic: gradient noise of covariance σ² Σ / B (default
Σ = H, the Gauss–Newton shape that least-squares minibatches have near the optimum; or the
least-squares minibatch model itself), a fixed budget of T steps from standard Gaussian
initial points, R independent noise streams per step size. The criterion is the mean over the
R runs of the loss gap averaged over the last `tail` fraction of the steps (the expected loss
at the end of training); η* is its minimiser over a log grid, refined by a parabola through
the best grid point and its neighbours in (log η, log loss). Optimizers: SGD, sign descent and
Adam (β1 = 0, β2 = 0.999) with ε a multiple of the per-coordinate noise scale at B = 1,
ε_ref = median_i σ √Σ_ii.

`surge` is reported when η*(B) first rises (by more than `SURGE_RISE`) to an interior maximum
and then falls by more than `SURGE_DROP` (well above the grid's step ratio of ~1.4); `shape`
says "surge", "increasing", "decreasing" or "flat".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from quadlab.cases import CASES, make_problem
from quadlab.noise import GaussianNoise, LeastSquaresNoise
from quadlab.run import run
from quadlab.validation import (
    as_real,
    as_sequence,
    check_choice,
    check_count,
    check_memory,
    check_positive,
    check_seed,
)

#: label -> (optimizer, hyper, ε as a multiple of ε_ref or None)
BATCH_OPTIMIZERS: dict[str, tuple[str, dict, float | None]] = {
    "sgd": ("gd", {}, None),
    "sign": ("sign-gd", {}, None),
    "adam ε=1e-3": ("adam", {"beta1": 0.0, "beta2": 0.999, "bias_correction": True}, 1e-3),
    "adam ε=1": ("adam", {"beta1": 0.0, "beta2": 0.999, "bias_correction": True}, 1.0),
    "adam ε=1e3": ("adam", {"beta1": 0.0, "beta2": 0.999, "bias_correction": True}, 1e3),
}
#: η* rising by more than SURGE_RISE to an interior peak and then falling by more than
#: SURGE_DROP counts as a surge; the overall shape is "increasing"/"decreasing" when
#: η*(B_max)/η*(B_min) is above SURGE_RISE / below 1/SURGE_RISE, else "flat"
SURGE_RISE = 1.25
SURGE_DROP = 2.0
GRID_POINTS = 41


@dataclass(frozen=True)
class BatchCurve:
    """η*(B) and the loss at η* for one optimizer.

    Attributes:
        label: optimizer label.
        eps: ε used (None for SGD and sign descent).
        batch_sizes: B values.
        lr_star: refined optimal step size per B.
        loss_star: criterion at the best grid point per B.
        grid: step sizes tried (same for every B).
        loss: criterion per B and step size, shape (len(B), len(grid)); +inf where a run
            diverged.
        at_edge: per B, whether the best grid point is at an end of the grid.
        surge: η* rises to an interior maximum and then falls (module docstring).
        shape: "surge", "increasing", "decreasing" or "flat".
        peak_batch: B at which η* is largest.
    """

    label: str
    eps: float | None
    batch_sizes: tuple[int, ...]
    lr_star: np.ndarray
    loss_star: np.ndarray
    grid: np.ndarray
    loss: np.ndarray
    at_edge: np.ndarray
    surge: bool
    shape: str
    peak_batch: int


@dataclass(frozen=True)
class BatchResult:
    """All curves and the settings."""

    curves: tuple[BatchCurve, ...]
    case: str
    noise: str
    criterion: str
    sigma: float
    steps: int
    repeats: int
    eps_ref: float

    def summary(self) -> dict:
        """JSON-ready settings and one row per optimizer and batch size."""
        rows = []
        for c in self.curves:
            for i, b in enumerate(c.batch_sizes):
                rows.append({"optimizer": c.label, "batch_size": int(b),
                             "lr_star": float(c.lr_star[i]), "loss_star": float(c.loss_star[i]),
                             "at_edge": bool(c.at_edge[i])})
        return {"case": self.case, "noise": self.noise, "criterion": self.criterion,
                "sigma": self.sigma,
                "steps": self.steps, "repeats": self.repeats, "eps_ref": self.eps_ref,
                "rows": rows,
                "surge": {c.label: c.surge for c in self.curves},
                "shape": {c.label: c.shape for c in self.curves},
                "peak_batch": {c.label: c.peak_batch for c in self.curves}}


def refine_minimum(grid: np.ndarray, loss: np.ndarray) -> tuple[float, float, bool]:
    """(η*, loss at the best grid point, at_edge): parabola in (log η, log loss) at the best point.

    Falls back to the best grid point at an end of the grid or when the parabola is not convex.
    """
    finite = np.isfinite(loss) & (loss > 0)
    if not finite.any():
        return float("nan"), float("inf"), True
    masked = np.where(finite, loss, np.inf)
    i = int(np.argmin(masked))
    if i in (0, grid.size - 1) or not (finite[i - 1] and finite[i + 1]):
        return float(grid[i]), float(loss[i]), i in (0, grid.size - 1)
    x = np.log(grid[i - 1:i + 2])
    y = np.log(loss[i - 1:i + 2])
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return float(grid[i]), float(loss[i]), False
    xs = float(np.clip(-b / (2 * a), x[0], x[2]))
    return float(np.exp(xs)), float(loss[i]), False


def curve_shape(lr_star: np.ndarray) -> tuple[bool, str]:
    """(surge, shape) of η*(B) (see the module docstring)."""
    peak = int(np.nanargmax(lr_star))
    rises = lr_star[peak] > SURGE_RISE * np.nanmin(lr_star[:peak + 1])
    falls = np.nanmin(lr_star[peak:]) < lr_star[peak] / SURGE_DROP
    if 0 < peak < lr_star.size - 1 and rises and falls:
        return True, "surge"
    ratio = lr_star[-1] / lr_star[0]
    if ratio > SURGE_RISE:
        return False, "increasing"
    if ratio < 1 / SURGE_RISE:
        return False, "decreasing"
    return False, "flat"


def _grid(problem, optimizer: str, eps: float | None, noise_scale: float) -> np.ndarray:
    lam_max = problem.all_eigenvalues[-1]
    if optimizer == "gd":
        return np.geomspace(1e-4, 2.0, GRID_POINTS) / lam_max
    # sign-like steps move every coordinate by ~η; with large ε, Adam ≈ GD with step η/ε
    hi = 1.0 if eps is None else max(1.0, 2.0 * (eps + noise_scale) / lam_max)
    return np.geomspace(1e-6 * hi, 2.0 * hi, GRID_POINTS)


def batch_study(*, case: str = "hetero", noise: str = "hessian", noise_to_signal: float = 30.0,
                criterion: str = "one-step",
                batch_sizes: Sequence[int] = tuple(2**k for k in range(13)),
                optimizers: Sequence[str] = tuple(BATCH_OPTIMIZERS), steps: int = 1000,
                repeats: int | None = None, tail: float = 0.1, seed: int = 0,
                progress: Callable[[str], None] | None = None) -> BatchResult:
    """Measure η*(B) for each optimizer (module docstring).

    Args:
        case: Hessian case.
        noise: "hessian" (Gaussian, Σ = H), "isotropic" (Gaussian, Σ = I) or "least-squares"
            (N = 8192 rows; batch sizes must not exceed N).
        noise_to_signal: ρ; σ is set so that the median per-coordinate noise std at B = 1,
            median_i σ √Σ_ii, is ρ × median_i |∇L(w0)_i| (so the noise-dominated regime ends
            near B ≈ ρ²).
        criterion: "one-step" — the expected loss after one step from the fixed point w0 (the
            local analysis of the seed; for bias-corrected Adam the first step is exactly
            η g̃/(|g̃| + ε), the SoftSign step) — or "budget" — training for `steps` steps.
        batch_sizes: B values.
        optimizers: labels from `BATCH_OPTIMIZERS`.
        steps: budget T (criterion "budget").
        repeats: R noise streams per step size (default 4096 for one-step, 16 for budget).
        tail: fraction of the last steps whose gaps are averaged.
        seed: problem, initial-point and noise seed.
        progress: called after each (optimizer, B).

    Returns:
        One `BatchCurve` per optimizer with the settings (`BatchResult`).

    Raises:
        TypeError, ValueError: each bad argument named (unknown case, noise, criterion or
            optimizer label; tail outside (0, 1]; non-positive noise_to_signal, steps, repeats
            or batch size; a negative seed; a run that would not fit in memory).
    """
    check_seed(seed)
    check_choice(case, CASES, what="case")
    check_choice(noise, ("hessian", "isotropic", "least-squares"), what="noise")
    check_choice(criterion, ("one-step", "budget"), what="criterion")
    tail = as_real(tail, name="tail")
    if not 0 < tail <= 1:
        raise ValueError(f"tail must be in (0, 1], got {tail}")
    noise_to_signal = check_positive(noise_to_signal, name="noise_to_signal")
    if noise_to_signal > 1e100:
        raise ValueError(f"noise_to_signal must be <= 1e100 (σ would overflow), got "
                         f"{noise_to_signal:g}")
    steps = check_count(steps, name="steps")
    batch_sizes = [check_count(b, name="batch_sizes entry")
                   for b in as_sequence(batch_sizes, name="batch_sizes", of="ints >= 1")]
    optimizers = [check_choice(o, BATCH_OPTIMIZERS, what="optimizer label")
                  for o in as_sequence(optimizers, name="optimizers", of="labels")]
    one_step = criterion == "one-step"
    repeats = ((4096 if one_step else 16) if repeats is None
               else check_count(repeats, name="repeats"))
    check_memory(8 * 4 * repeats * max(steps + 1, 9) * 41,
                 what=f"batch_study with {repeats} repeats × {steps} steps",
                 fix="use fewer repeats or steps")
    problem = make_problem(case, seed=seed)
    w_fixed = problem.initial_points(seed=seed)
    signal = float(np.median(np.abs(problem.grad(w_fixed))))
    if noise == "hessian":
        unit = np.sqrt(np.diag(problem.hessian()))
    elif noise == "isotropic":
        unit = np.ones(problem.d)
    elif noise == "least-squares":
        unit = np.sqrt(np.diag(LeastSquaresNoise(n_samples=8192, sigma=1.0)
                               .covariance(problem)))
    else:
        raise ValueError(f"unknown noise {noise!r}; choose hessian, isotropic or least-squares")
    sigma = noise_to_signal * signal / float(np.median(unit))
    model = (LeastSquaresNoise(n_samples=8192, sigma=sigma) if noise == "least-squares"
             else GaussianNoise(noise, scale=sigma))
    eps_ref = float(np.median(sigma * unit))
    if one_step:
        w0, steps, first = w_fixed, 1, 1
    else:
        w0 = problem.initial_points(repeats, seed=seed)
        first = max(0, round(steps * (1 - tail)))
    curves = []
    for label in optimizers:
        if label not in BATCH_OPTIMIZERS:
            raise ValueError(f"unknown optimizer label {label!r}; choose from "
                             f"{', '.join(BATCH_OPTIMIZERS)}")
        name, hyper, rel = BATCH_OPTIMIZERS[label]
        eps = None if rel is None else rel * eps_ref
        if eps is not None:
            hyper = {**hyper, "eps": eps}
        grid = _grid(problem, name, eps, eps_ref)
        lrs = np.repeat(grid, repeats)
        starts = w0 if one_step else np.tile(w0, (grid.size, 1))
        loss = np.empty((len(batch_sizes), grid.size))
        for j, b in enumerate(batch_sizes):
            gaps = run(problem, name, lr=lrs, w0=starts, steps=steps, noise=model,
                       batch_size=int(b), seed=seed, on_divergence="ignore", **hyper)
            with np.errstate(invalid="ignore"):
                per_run = gaps[:, first:].mean(axis=1).reshape(grid.size, repeats)
                loss[j] = per_run.mean(axis=1)  # +inf if any repeat diverged
            if progress is not None:
                progress(f"{label} B={b}")
        best = [refine_minimum(grid, row) for row in loss]
        lr_star = np.array([b[0] for b in best])
        peak = int(np.nanargmax(lr_star))
        surge, shape = curve_shape(lr_star)
        curves.append(BatchCurve(label, eps, tuple(int(b) for b in batch_sizes), lr_star,
                                 np.array([b[1] for b in best]), grid, loss,
                                 np.array([b[2] for b in best]), surge, shape,
                                 int(batch_sizes[peak])))
    return BatchResult(tuple(curves), case, noise, criterion, sigma, steps, repeats, eps_ref)


def batch_studies(*, batch_sizes: Sequence[int], criteria: dict[str, dict], case: str = "hetero",
                  noise: str = "hessian", progress: Callable[[str], None] | None = None
                  ) -> dict[str, BatchResult]:
    """`batch_study` under several criteria at the same batch sizes.

    Args:
        batch_sizes: B values.
        criteria: criterion ("one-step" or "budget") -> extra keyword arguments of
            `batch_study` (steps, repeats, optimizers, …).
        case: as in `batch_study`.
        noise: as in `batch_study`.
        progress: as in `batch_study`.

    Returns:
        criterion -> result.
    """
    return {crit: batch_study(case=case, noise=noise, criterion=crit, batch_sizes=batch_sizes,
                              progress=progress, **kw) for crit, kw in criteria.items()}
