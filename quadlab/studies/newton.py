"""Seed 002: is Adam an approximate (diagonal) Newton method? Measured on stochastic quadratics.

The seed (Su 2024, after Molybog et al. 2023) argues: near the optimum, with the iterate spread
θ − θ* ~ N(0, s² I), E[g gᵀ] ≈ H E[e eᵀ] H = s² H², so on a diagonal Hessian Adam's second
moment v ≈ s² diag(H²) and √v ∝ |H|: Adam ≈ diagonal Newton, provided the average is long
(β2 → 1). It contrasts the Gauss–Newton (instantaneous) view for least squares,
g gᵀ ≈ σ² H, and notes that AdaBelief, averaging (g − m)², estimates a covariance instead.

What is measured here (`newton_study`), for Adam and AdaBelief, several β2, on a diagonal
Hessian and on Haar-rotated blocks, with exact gradients (Adam with β2 < 1 then keeps circling
the optimum, the paper's Proposition 2 — the regime the seed's argument describes), under
least-squares minibatch noise (Gauss–Newton shaped, cov ≈ σ² H / B) and under isotropic
Gaussian noise (cov = σ² I / B), starting near the optimum and averaging over the second half
of the run (`quadlab.statistics`):

* ``p``: the exponent of v̄ ∝ diag(H)^p (least squares in logs across coordinates). The seed's
  diagonal-Newton claim predicts p = 2; the Gauss–Newton noise view predicts p = 1 under
  least-squares noise and p = 0 under isotropic noise.
* ``q``: the exponent of v̄ ∝ diag(H²)^q: the seed's E[g gᵀ] ≈ s² H² predicts q = 1 on any
  block (rotated too) if the iterate spread is isotropic.
* ``err_su``: max_i |v̄_i / (ŝ² diag(H²)_i) − 1|, ŝ² fitted (geometric mean of the ratios).
* ``err_noise``: max_i |v̄_i / diag(C)_i − 1|, C the exact noise covariance at w* (no fit).
* ``err_gn``: max over blocks of ‖E[g̃ g̃ᵀ] − σ² H/B‖_F / ‖σ² H/B‖_F: the Gauss–Newton statement
  for the instantaneous outer product (σ the noise scale).
* ``signal``: share of E[g̃⊙g̃] due to the iterate spread, mean_i E[(He)_i²] / E[g̃_i²] — the
  part the seed's argument is about; the rest is gradient noise.
* ``iso_err``: max over blocks ‖E[eeᵀ] − s² I‖_F / ‖s² I‖_F, s² = tr/size: the seed's premise
  that the iterate spread is isotropic.
* ``edge``: max_i η diag(H)_i / √v̄_i — Adam's per-coordinate step times curvature; ≈ 2 means
  the coordinate sits at its stability edge, where v is set by η and H rather than by noise.
* ``snapshot``: median over trajectories and coordinates of |v_T / v̄ − 1|, the error of the
  single β2-window estimate at the last step against the long average (short windows = β2
  small should be noisier).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from quadlab.cases import HETERO_SPECTRA, make_problem
from quadlab.noise import GaussianNoise, LeastSquaresNoise
from quadlab.problem import Problem
from quadlab.statistics import trajectory_statistics
from quadlab.validation import (
    as_real,
    as_sequence,
    check_choice,
    check_count,
    check_memory,
    check_positive,
    check_seed,
)

#: problem label -> how it is built (diagonal, rotated narrow blocks, rotated wide blocks)
NEWTON_PROBLEMS = ("hetero-diagonal", "hetero-rotated", "homo-rotated")
NEWTON_NOISES = ("none", "least-squares", "isotropic")


def newton_problem(name: str) -> Problem:
    """The study's problems: hetero spectra with identity blocks, or the seeded Haar cases."""
    if name == "hetero-diagonal":
        return Problem.from_spectra([np.array(s) for s in HETERO_SPECTRA], [np.eye(3)] * 3,
                                    name=name)
    if name == "hetero-rotated":
        return replace(make_problem("hetero", seed=0, h_scale=0.0), name=name)
    if name == "homo-rotated":
        return replace(make_problem("homo", seed=0, h_scale=0.0), name=name)
    raise ValueError(f"unknown problem {name!r}; choose one of {', '.join(NEWTON_PROBLEMS)}")


def newton_noise(name: str, sigma: float):
    """"none" (exact gradients), "least-squares" (N = 1024 rows, residual σ) or "isotropic"
    (Gaussian, scale σ)."""
    if name == "none":
        return None
    if name == "least-squares":
        return LeastSquaresNoise(n_samples=1024, sigma=sigma, data_seed=0)
    if name == "isotropic":
        return GaussianNoise("isotropic", scale=sigma)
    raise ValueError(f"unknown noise {name!r}; choose one of {', '.join(NEWTON_NOISES)}")


@dataclass(frozen=True)
class NewtonRow:
    """One configuration's measurements (see the module docstring for each field)."""

    problem: str
    noise: str
    optimizer: str
    beta2: float
    p: float
    q: float
    err_su: float
    err_noise: float
    err_gn: float
    signal: float
    iso_err: float
    edge: float
    snapshot: float
    v_mean: tuple[float, ...]
    diag_h: tuple[float, ...]
    diag_h2: tuple[float, ...]
    diag_noise: tuple[float, ...]


@dataclass(frozen=True)
class NewtonResult:
    """All rows of the study and its settings."""

    rows: tuple[NewtonRow, ...]
    lr: float
    steps: int
    trajectories: int
    sigma: float
    batch_size: int

    def summary(self) -> dict:
        """JSON-ready settings and rows."""
        return {"lr": self.lr, "steps": self.steps, "trajectories": self.trajectories,
                "sigma": self.sigma, "batch_size": self.batch_size,
                "rows": [dict(r.__dict__) for r in self.rows]}


def _rel_frob(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def measure(problem: Problem, noise, optimizer: str, beta2: float, *, lr: float, steps: int,
            trajectories: int, batch_size: int, seed: int, noise_name: str) -> NewtonRow:
    """Run one configuration and compute the row's measurements."""
    w0 = problem.w_star + problem.initial_points(trajectories, seed=seed, std=1e-2)
    hyper = {"beta1": 0.9, "beta2": beta2, "eps": 1e-12}
    if optimizer == "adam":
        hyper["bias_correction"] = True
    common = {"lr": lr, "w0": w0, "steps": steps, "noise": noise, "batch_size": batch_size,
              "seed": seed}
    avg = trajectory_statistics(problem, optimizer, average_from=steps // 2, **common, **hyper)
    last = trajectory_statistics(problem, optimizer, average_from=steps - 1, **common, **hyper)
    kept = avg.kept & last.kept
    hess = problem.hessian()
    dh, dh2 = np.diag(hess), np.diag(hess @ hess)
    v = avg.v[kept].mean(axis=0)
    p = float(np.polyfit(np.log(dh), np.log(v), 1)[0])
    q = float(np.polyfit(np.log(dh2), np.log(v), 1)[0])
    s2 = float(np.exp(np.mean(np.log(v / dh2))))
    err_su = float(np.max(np.abs(v / (s2 * dh2) - 1)))
    if noise is None:  # no noise covariance to compare with
        dn = np.zeros(problem.d)
        err_noise = err_gn = float("nan")
    else:
        dn = np.diag(noise.covariance(problem, None, batch_size))
        err_noise = float(np.max(np.abs(v / dn - 1)))
        sig2 = noise.sigma**2 if isinstance(noise, LeastSquaresNoise) else noise.scale**2
        err_gn = max(_rel_frob(gg, sig2 * hess[sl, sl] / batch_size)
                     for gg, sl in zip(avg.gg_noisy, problem.block_slices, strict=True))
    signal = float(np.mean(avg.g2_true[kept].mean(axis=0) / avg.g2_noisy[kept].mean(axis=0)))
    iso = max(_rel_frob(ee, np.trace(ee) / ee.shape[0] * np.eye(ee.shape[0])) for ee in avg.ee)
    edge = float(np.max(lr * dh / np.sqrt(v)))
    snapshot = float(np.median(np.abs(last.v[kept] / avg.v[kept] - 1)))
    return NewtonRow(problem.name, noise_name, optimizer, beta2, p, q, err_su, err_noise, err_gn,
                     signal, iso, edge, snapshot, tuple(v.tolist()), tuple(dh.tolist()),
                     tuple(dh2.tolist()), tuple(dn.tolist()))


def newton_study(*, problems: Sequence[str] = NEWTON_PROBLEMS,
                 noises: Sequence[str] = NEWTON_NOISES,
                 optimizers: Sequence[str] = ("adam", "adabelief"),
                 beta2s: Sequence[float] = (0.9, 0.99, 0.999), lr: float = 1e-3,
                 steps: int = 20_000, trajectories: int = 64, sigma: float = 1.0,
                 batch_size: int = 1, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> NewtonResult:
    """Measure seed 002's claims (module docstring) on every combination.

    Args:
        problems: names from `NEWTON_PROBLEMS`.
        noises: names from `NEWTON_NOISES`.
        optimizers: "adam" (β1 = 0.9, bias-corrected) and/or "adabelief" (β1 = 0.9); ε = 1e-12.
        beta2s: second-moment decay rates (window ≈ 1/(1 − β2) steps).
        lr: step size η.
        steps: iterations; statistics are averaged over the second half.
        trajectories: independent runs per configuration, from w* + N(0, 1e-4 I).
        sigma: noise scale (residual rms for least squares, σ for Gaussian).
        batch_size: B.
        seed: seed of the initial points and of the noise streams.
        progress: called after each configuration.

    Returns:
        One `NewtonRow` per configuration, with the settings (`NewtonResult`).

    Raises:
        TypeError, ValueError: each bad argument named.
    """
    problems = [check_choice(x, NEWTON_PROBLEMS, what="problem")
                for x in as_sequence(problems, name="problems", of="problem names")]
    noises = [check_choice(x, NEWTON_NOISES, what="noise")
              for x in as_sequence(noises, name="noises", of="noise names")]
    optimizers = [check_choice(x, ("adam", "adabelief"), what="optimizer")
                  for x in as_sequence(optimizers, name="optimizers", of="optimizer names")]
    beta2s = [as_real(b, name="beta2s entry")
              for b in as_sequence(beta2s, name="beta2s", of="β2 values")]
    for b in beta2s:
        if not 0 <= b < 1:
            raise ValueError(f"beta2s entries must be in [0, 1), got {b!r}")
    lr = check_positive(lr, name="lr")
    steps = check_count(steps, name="steps", minimum=2)
    trajectories = check_count(trajectories, name="trajectories")
    sigma = as_real(sigma, name="sigma")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    batch_size = check_count(batch_size, name="batch_size")
    check_seed(seed)
    check_memory(8 * trajectories * (steps + 1) * 4, what=f"newton_study with {trajectories} "
                 f"trajectories × {steps} steps", fix="use fewer trajectories or steps")
    rows = []
    for pname in problems:
        problem = newton_problem(pname)
        for nname in noises:
            noise = newton_noise(nname, sigma)
            for opt in optimizers:
                for b2 in beta2s:
                    rows.append(measure(problem, noise, opt, float(b2), lr=lr, steps=steps,
                                        trajectories=trajectories, batch_size=batch_size,
                                        seed=seed, noise_name=nname))
                    if progress is not None:
                        progress(f"{pname} {nname} {opt} β2={b2:g}")
    return NewtonResult(tuple(rows), lr, steps, trajectories, sigma, batch_size)
