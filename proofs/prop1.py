"""Proposition 1 (GD lower bound), checked per step, for every step size, as printed and corrected.

As printed (seed §3.2): there exist a block-diagonal H, h and w0 such that for any η,

    L(w_GD^{t+1}) − L* >= (1 − 2/(κ+1)) (L(w_GD^t) − L*).

This is false for *every* (H, h, w0): at η* = 2/(λ_min + λ_max) each eigen-mode of the error
contracts by |1 − η*λ| <= (κ−1)/(κ+1), so the loss gap (quadratic in the error) contracts by at
least ρ² with ρ = (κ−1)/(κ+1) = 1 − 2/(κ+1) < 1; and ρ² < ρ. The checker finds this numerically.

Corrected (the squared factor, i.e. the classical tight rate of GD on the loss):

    L(w_GD^{t+1}) − L* >= (1 − 2/(κ+1))² (L(w_GD^t) − L*)   for all η > 0, t >= 0,

with the construction H = diag(1, κ), h = 0, w0 = (κ, 1) (both gradient coordinates equal to κ).
Why it holds: with loss weights p = κ/(κ+1) on the slow mode and q = 1/(κ+1) on the fast one,
the step-0 ratio p(1−η)² + q(1−κη)² is a quadratic in η whose minimum, at η* = 2/(κ+1), is
exactly ρ²; the ratios of later steps are ratios of consecutive moments Σ_j w_j A_j^t, which are
non-decreasing in t (log-convexity). The bound is attained with equality at η* for every t.
Other loadings of the two modes fail the corrected bound at t = 0 (the checker shows it), which
is why the construction matters.

All gaps are evaluated exactly in log space (`proofs._numerics`); a ratio violates the bound when
log(ratio) < (1 + `REL_TOL`)·log(bound) − `ABS_LOG_TOL`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from quadlab import Problem

from ._numerics import gd_modes, log_gaps, log_ratios
from .efforts import Effort, get_effort
from .instances import START_KINDS, random_problem, random_start
from .verdict import Verdict

#: Relative tolerance on the per-step contraction exponent: a ratio violates the bound when
#: log(ratio) < (1 + REL_TOL)·log(bound). Gaps are computed in log space (log1p for the rates)
#: from float64 eigenpairs; near the bound their logs carry ~t·1e-16 relative error.
REL_TOL = 1e-9
#: Absolute allowance on log(ratio): each rate (1 − ηλ)² carries a few ulps of round-off
#: (η, ηλ and 1 − ηλ are rounded), ~1e-15 in log near η*, whatever κ. 1e-13 ≈ 450 ulps.
ABS_LOG_TOL = 1e-13


@dataclass(frozen=True)
class Prop1Statement:
    """A per-step lower bound L_{t+1} − L* >= factor(κ) (L_t − L*) for all η > 0 and all t."""

    form: str
    factor: Callable[[float], float]
    text: str


PRINTED = Prop1Statement(
    form="as-printed",
    factor=lambda kappa: (kappa - 1.0) / (kappa + 1.0),
    text=("There exist block-diagonal H, h, w0 such that for every step size η > 0 and every "
          "t >= 0: L(w_GD^{t+1}) − L* >= (1 − 2/(κ+1)) · (L(w_GD^t) − L*), κ = cond(H)."),
)

CORRECTED = Prop1Statement(
    form="corrected",
    factor=lambda kappa: ((kappa - 1.0) / (kappa + 1.0)) ** 2,
    text=("Changed: the factor is squared. With H = diag(1, κ), h = 0, w0 = (κ, 1), for every "
          "η > 0 and every t >= 0: L(w_GD^{t+1}) − L* >= (1 − 2/(κ+1))² · (L(w_GD^t) − L*) "
          "= ((κ−1)/(κ+1))² · (L(w_GD^t) − L*), with equality at η = 2/(κ+1). "
          "Complexity is still Θ(κ log(1/ε)): the Õ(κ) conclusion is unchanged."),
)


def tight_construction(kappa: float) -> tuple[Problem, np.ndarray]:
    """(problem, w0) with H = diag(1, κ), h = 0, w0 = (κ, 1): ∇L(w0) = (κ, κ).

    Args:
        kappa: κ > 1.

    Raises:
        ValueError: κ not a finite number > 1.
    """
    kappa = float(kappa)
    if not np.isfinite(kappa) or kappa <= 1.0:
        raise ValueError(f"kappa must be finite and > 1, got {kappa!r}")
    problem = Problem.from_blocks([np.array([[1.0]]), np.array([[kappa]])],
                                  name=f"prop1-tight(κ={kappa:g})")
    return problem, np.array([kappa, 1.0])


def equal_loading(kappa: float) -> tuple[Problem, np.ndarray]:
    """H = diag(1, κ), w0 = (1, 1/√κ): both modes carry the same loss (not tight at t = 0)."""
    problem, _ = tight_construction(kappa)
    return problem, np.array([1.0, 1.0 / np.sqrt(kappa)])


@dataclass(frozen=True)
class Prop1Result:
    """Outcome of checking a Proposition-1 statement on one (H, h, w0) over a step-size grid.

    Attributes:
        holds: no (η, t) with log(ratio) < (1 + REL_TOL)·log(bound) − ABS_LOG_TOL.
        kappa: κ(H).
        bound: factor(κ).
        worst_ratio: min over (η, t) of the per-step gap ratio.
        worst_eta, worst_t: where it is attained.
        ratio_at_eta_opt: min over t of the ratio at η* = 2/(λ_min + λ_max).
        n_eta, n_steps: grid size checked.
    """

    holds: bool
    kappa: float
    bound: float
    worst_ratio: float
    worst_eta: float
    worst_t: int
    ratio_at_eta_opt: float
    n_eta: int
    n_steps: int


def eta_grid(problem: Problem, n: int) -> np.ndarray:
    """Step sizes: n log-spaced in [1e-4, 3]/λ_max (divergent ones included), plus the
    analytically special ones: 2/(λ_min+λ_max), 1/λ_j for every eigenvalue, 2/λ_max."""
    lam = problem.all_eigenvalues
    grid = np.geomspace(1e-4 / lam[-1], 3.0 / lam[-1], max(int(n), 2))
    special = np.concatenate([[2.0 / (lam[0] + lam[-1]), 2.0 / lam[-1]], 1.0 / lam])
    return np.unique(np.concatenate([grid, special]))


def step0_minimiser(problem: Problem, w0) -> float:
    """argmin_η of the step-0 ratio Σ w_j(1−ηλ_j)² / Σ w_j: η = Σ w_jλ_j / Σ w_jλ_j²."""
    nu, a = gd_modes(problem, w0)
    return float(np.sum(a * nu) / np.sum(a * nu * nu))


def check_prop1(problem: Problem, w0: np.ndarray, *, statement: Prop1Statement = CORRECTED,
                n_eta: int = 1000, steps: int = 100,
                etas: Sequence[float] | np.ndarray | None = None) -> Prop1Result:
    """Check a Proposition-1 bound per step on one instance, over a grid of step sizes.

    Args:
        problem: the quadratic (H, h).
        w0: the initial point.
        statement: the bound to check (`PRINTED`, `CORRECTED` or your own).
        n_eta: number of log-spaced step sizes (special ones are added, see `eta_grid`).
        steps: per-step ratios are checked for t = 0..steps−1.
        etas: explicit step sizes instead of the grid.

    Returns:
        A `Prop1Result`.

    Raises:
        ValueError: κ(H) = 1 (the bound is vacuous), bad steps, or non-positive etas.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    kappa = problem.kappa
    if kappa <= 1.0:
        raise ValueError("κ(H) = 1: Proposition 1 needs an ill-conditioned H")
    lam = problem.all_eigenvalues
    eta_opt = 2.0 / (lam[0] + lam[-1])
    etas = eta_grid(problem, n_eta) if etas is None else np.asarray(etas, dtype=np.float64)
    if np.any(etas <= 0):
        raise ValueError("step sizes must be > 0")
    etas = np.unique(np.concatenate([etas, [eta_opt, step0_minimiser(problem, w0)]]))
    nu, a = gd_modes(problem, w0)
    lr = log_ratios(log_gaps(nu, a, etas, steps))  # (n_eta, steps)
    bound = float(statement.factor(kappa))
    if not 0 < bound:
        raise ValueError(f"the statement's factor must be > 0, got {bound!r}")
    log_bound = np.log(bound)
    filled = np.where(np.isnan(lr), np.inf, lr)  # gap exactly 0: no ratio to check
    i, t = np.unravel_index(np.argmin(filled), filled.shape)
    worst = float(filled[i, t])
    # report the earliest step attaining the minimum (ties are common at η*)
    t = int(np.flatnonzero(filled[i] <= worst + 1e-13 * max(1.0, abs(worst)))[0])
    at_opt = filled[np.searchsorted(etas, eta_opt)]
    return Prop1Result(
        holds=bool(worst >= (1.0 + REL_TOL) * log_bound - ABS_LOG_TOL), kappa=kappa, bound=bound,
        worst_ratio=float(np.exp(worst)), worst_eta=float(etas[i]), worst_t=int(t),
        ratio_at_eta_opt=float(np.exp(at_opt.min())), n_eta=int(etas.size), n_steps=int(steps))


def _result_dict(res: Prop1Result) -> dict:
    return {"kappa": res.kappa, "bound": res.bound, "worst_ratio": res.worst_ratio,
            "worst_ratio_over_bound": res.worst_ratio / res.bound, "worst_eta": res.worst_eta,
            "worst_t": res.worst_t, "ratio_at_eta_opt": res.ratio_at_eta_opt,
            "holds": res.holds}


def search_prop1(*, effort: str | Effort = "default", seed: int = 0,
                 statements: tuple[Prop1Statement, ...] = (PRINTED, CORRECTED)
                 ) -> list[Verdict]:
    """Check Proposition 1 as printed and corrected; return one `Verdict` per statement.

    The statement is existential ("there exist H, h, w0"). For each statement we check the tight
    construction for every κ of the effort on a fine η grid (per step), plus random
    constructions (random block-diagonal H, h, Gaussian/scaled/tiny-gradient w0) on a coarser
    grid. The existential claim holds for a given κ when at least one construction satisfies
    the bound for every η and t; it is violated when none of them does.

    Args:
        effort: "test", "default", "high" or an `Effort`.
        seed: seed of the numpy Generator for the random constructions.
        statements: which statements to check.
    """
    eff = get_effort(effort)
    rng = np.random.default_rng(seed)
    randoms = []
    for _ in range(eff.prop1_random):
        p = random_problem(rng, max_blocks=4, max_size=4)
        if p.kappa > 1.0 + 1e-9:
            randoms.append((p, random_start(p, rng, kind=START_KINDS[len(randoms) % 3])))
    out = []
    for st in statements:
        per_kappa, failing_kappas = [], []
        for kappa in eff.prop1_kappas:
            res = check_prop1(*tight_construction(kappa), statement=st, n_eta=eff.prop1_etas,
                              steps=eff.prop1_steps)
            per_kappa.append(_result_dict(res))
            if not res.holds:
                failing_kappas.append(kappa)
        random_res = [check_prop1(p, w0, statement=st, n_eta=60, steps=8) for p, w0 in randoms]
        n_random_hold = sum(r.holds for r in random_res)
        eq = check_prop1(*equal_loading(max(eff.prop1_kappas)), statement=st, n_eta=200,
                         steps=5)
        # existential: violated iff no construction tried satisfies it; holds iff the tight
        # construction satisfies it at every κ tried; mixed results are inconclusive
        if not failing_kappas:
            verdict = "holds"
        elif n_random_hold == 0 and len(failing_kappas) == len(per_kappa):
            verdict = "violated"
        else:
            verdict = "inconclusive"
        worst = min(per_kappa, key=lambda d: d["worst_ratio_over_bound"])
        ratio_opt_over_bound = [r.ratio_at_eta_opt / r.bound for r in random_res]
        evidence = {
            "instances_tried": len(per_kappa) + len(random_res) + 1,
            "tight_construction": "H = diag(1, κ), h = 0, w0 = (κ, 1)",
            "per_kappa": per_kappa,
            "worst_ratio_over_bound": worst["worst_ratio_over_bound"],
            "kappas_violated": failing_kappas,
            "random_constructions": len(random_res),
            "random_constructions_satisfying": n_random_hold,
            "random_max_ratio_at_eta_opt_over_bound": (max(ratio_opt_over_bound)
                                                       if ratio_opt_over_bound else None),
            "equal_loading_construction": _result_dict(eq),
            "tolerance": f"violation iff log(ratio) < (1 + {REL_TOL:g})·log(bound) − "
                         f"{ABS_LOG_TOL:g} (exact gaps in log space)",
            "grid": f"{eff.prop1_etas} log-spaced η in [1e-4, 3]/λ_max + special steps, "
                    f"t = 0..{eff.prop1_steps - 1}",
        }
        if failing_kappas:
            evidence["counterexample"] = {k: worst[k] for k in
                                          ("kappa", "worst_eta", "worst_t", "worst_ratio",
                                           "bound")}
        else:
            evidence["tightness"] = ("min ratio/bound over the grid = "
                                     f"{worst['worst_ratio_over_bound']:.12g} (1 = attained)")
        out.append(Verdict(id="prop1", form=st.form, statement=st.text, verdict=verdict,
                           evidence=evidence))
    return out
