"""Theorem 1 (simplified Adam, β1 = 0, β2 = 1), checked per step, as printed and corrected.

Setting (seed §3.2): w ← w − η D⁻¹∇L(w), D = diag(|∇L(w0)|) (Eq. (2)); λ_{l,1} = λ_max(H_l),
C_{l,1} = min_i |g0_{l,i}|/λ_{l,1}, C_{l,2} = max_i |g0_{l,i}|/λ_{l,1},
r = max_l C_{l,2}² / min_l C_{l,1}², κ_Adam,l = r κ_l. Claim: with probability 1 over w0,

    L(w^{t+1}) − L* <= max_l (1 − 1/κ_Adam,l) (L(w^t) − L*)      for every t,

with the printed step η = min_l 1/C_{l,1}.

Exact per-step rate. With M = D^{-1/2} H D^{-1/2} (eigenvalues ν_j, block by block) the gap is
L(w_t) − L* = ½ Σ_j a_j (1 − ην_j)^{2t}, a_j > 0 almost surely, so the per-step ratio is
non-decreasing in t and its supremum over t is ρ_sup = max_j (1 − ην_j)² — attained at ν_min or
ν_max. ν_max is computed from M_l and ν_min from M_l⁻¹ = D^{1/2} H_l⁻¹ D^{1/2} (each to ~1e-15
relative). We also run `quadlab.run` and check every measured step ratio.

Why the printed step fails: ν_max >= λ_{l,1}/max_i|g0_{l,i}| (Rayleigh quotient at the top
eigenvector of H_l), so η·ν_max >= 1/(min_l C_{l,1} · max_l C_{l,2}) which is ≫ 2 whenever the
gradient is small compared with λ_{l,1}: the iteration diverges. The printed step is not even
invariant under w0 − w* → s(w0 − w*) (η scales like 1/s, ν like 1/s), while the claimed rate is.

Corrected (only the step changes): η = min_l C_{l,1}. Proof sketch: every ν_j of block l lies in
[λ_min(H_l)/max_i|g0_{l,i}|, λ_{l,1}/min_i|g0_{l,i}|] = [1/(κ_l C_{l,2}), 1/C_{l,1}], so
0 < ην_j <= 1 and ην_j >= min_l C_{l,1}/(κ_l C_{l,2}) >= 1/(√r max_l κ_l). Hence
ρ_sup <= (1 − 1/(√r max_l κ_l))² <= 1 − 1/(r max_l κ_l) = max_l (1 − 1/κ_Adam,l) (r >= 1).
The sharp form (1 − 1/(√r max_l κ_l))² is attained (e.g. H = I₂, |g0| = (1, δ)); the printed
rate is loose by a factor ≈ √r/2 in iterations (`looseness`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import quadlab
from quadlab import Problem
from quadlab import strategies as qs

from .efforts import Effort, get_effort
from .instances import START_KINDS, random_problem, random_start
from .search import hypothesis_search
from .verdict import Verdict

#: Relative tolerance on the contraction exponent: violated iff
#: log(ratio) > (1 − REL_TOL)·log(bound) (for bound < 1), i.e. the measured rate is faster to
#: lose than the bound by more than 1e-9 relative. Eigenvalue errors are ~1e-15 relative.
REL_TOL = 1e-9
#: Per-step ratios from `quadlab.run` are only formed where both gaps exceed this fraction of
#: the initial gap (quadlab's closed form drops terms below 1e-300).
RUN_FLOOR = 1e-250
#: Extra allowance on log(ratio) for the ratios measured through `quadlab.run`, whose gaps are
#: products of t float64 factors (relative error ~t·1e-16 on each gap, ~1e-13 on a ratio).
RUN_TOL = 1e-12
#: Absolute allowance on a per-step ratio (a ratio of gaps, so relative to the loss scale): it
#: only matters when the bound is ~0 (r·max κ_l = 1, where ην = 1 exactly in exact arithmetic
#: and float64 leaves (1 − ην)² ~ 1e-31). 1e-24 means ην resolved to 1e-12.
ABS_TOL = 1e-24


@dataclass(frozen=True)
class Thm1Statement:
    """A Theorem-1 statement: a step-size rule and a per-step rate bound, both functions of
    `quadlab.AdamConstants`."""

    form: str
    step: Callable[[quadlab.AdamConstants], float]
    log_bound: Callable[[quadlab.AdamConstants], float]
    text: str


def _log_printed_rate(c: quadlab.AdamConstants) -> float:
    """log max_l (1 − 1/(r κ_l)) = log1p(−1/(r max_l κ_l)) (−inf when r·max κ_l = 1)."""
    with np.errstate(divide="ignore"):
        return float(np.log1p(-1.0 / (c.r * np.max(c.kappa_blocks))))


def _log_sharp_rate(c: quadlab.AdamConstants) -> float:
    """log (1 − 1/(√r max_l κ_l))² (−inf when r·max κ_l = 1)."""
    with np.errstate(divide="ignore"):
        return float(2.0 * np.log1p(-1.0 / (np.sqrt(c.r) * np.max(c.kappa_blocks))))


PRINTED = Thm1Statement(
    form="as-printed",
    step=lambda c: float(np.min(1.0 / c.C1)),
    log_bound=_log_printed_rate,
    text=("Simplified Adam w ← w − η diag(|∇L(w0)|)⁻¹∇L(w) with η = min_l 1/C_{l,1}: for almost "
          "every w0 and every t, L(w^{t+1}) − L* <= max_l (1 − 1/(r κ_l)) (L(w^t) − L*), where "
          "C_{l,1} = min_i |∇L(w0)_{l,i}|/λ_{l,1}, C_{l,2} = max_i |∇L(w0)_{l,i}|/λ_{l,1}, "
          "r = max_l C_{l,2}²/min_l C_{l,1}², κ_l = cond(H_l)."),
)

CORRECTED = Thm1Statement(
    form="corrected",
    step=lambda c: float(np.min(c.C1)),
    log_bound=_log_printed_rate,
    text=("Changed: the step is η = min_l C_{l,1} (printed: min_l 1/C_{l,1}). Then for every w0 "
          "with no zero gradient coordinate and every t, L(w^{t+1}) − L* <= max_l (1 − 1/(r κ_l)) "
          "(L(w^t) − L*), same r, C_{l,1}, C_{l,2}, κ_l. (Also holds, sharper and attained: "
          "(1 − 1/(√r max_l κ_l))².)"),
)

SHARP = Thm1Statement(
    form="corrected",
    step=lambda c: float(np.min(c.C1)),
    log_bound=_log_sharp_rate,
    text="η = min_l C_{l,1}: L(w^{t+1}) − L* <= (1 − 1/(√r max_l κ_l))² (L(w^t) − L*).",
)


def extreme_modes(problem: Problem, g0: np.ndarray) -> tuple[float, float]:
    """(ν_min, ν_max) of D^{-1/2} H D^{-1/2}, D = diag|g0|, each to ~1e-15 relative accuracy.

    ν_max from M_l = D_l^{-1/2} H_l D_l^{-1/2}; ν_min = 1/λ_max(M_l⁻¹) with
    M_l⁻¹ = D_l^{1/2} Q_l diag(1/λ_l) Q_lᵀ D_l^{1/2} (no cancellation for ill-conditioned M_l).
    """
    dsq = np.sqrt(np.abs(g0))
    nu_min, nu_max = np.inf, 0.0
    for sl, lam, q in zip(problem.block_slices, problem.eigenvalues, problem.eigenvectors,
                          strict=True):
        s = dsq[sl]
        half = q * np.sqrt(lam)  # H_l = half halfᵀ
        m = (half / s[:, None])
        nu_max = max(nu_max, float(np.linalg.eigvalsh(m @ m.T)[-1]))
        inv_half = (q / np.sqrt(lam)) * 1.0  # H_l⁻¹ = inv_half inv_halfᵀ
        mi = s[:, None] * inv_half
        nu_min = min(nu_min, 1.0 / float(np.linalg.eigvalsh(mi @ mi.T)[-1]))
    return nu_min, nu_max


@dataclass(frozen=True)
class Thm1Result:
    """Outcome of a Theorem-1 statement on one (problem, w0).

    Attributes:
        holds: log ρ_sup <= (1 − REL_TOL)·log bound and every measured step ratio obeys it too.
        eta: the statement's step size.
        r: the constant r.
        max_kappa_block: max_l κ_l.
        log_bound: log of the claimed per-step factor.
        log_sup_ratio: log ρ_sup = max_j log (1 − ην_j)² (the sup over t of the step ratio).
        max_run_ratio: largest per-step ratio measured by `quadlab.run` over `steps` steps
            (inf if quadlab reported divergence).
        eta_nu_max: η·ν_max (> 2 means divergence).
        looseness: log ρ_sup / log bound = (steps the bound predicts)/(steps actually needed)
            per decade, when both are < 1 (nan otherwise).
    """

    holds: bool
    eta: float
    r: float
    max_kappa_block: float
    log_bound: float
    log_sup_ratio: float
    max_run_ratio: float
    eta_nu_max: float
    looseness: float


def _log_sup(eta: float, nu_min: float, nu_max: float) -> float:
    def log_sq(x: float) -> float:
        if x < 1.0:
            return 2.0 * float(np.log1p(-x))
        return 2.0 * float(np.log(x - 1.0)) if x != 1.0 else -np.inf
    return max(log_sq(eta * nu_min), log_sq(eta * nu_max))


def check_thm1(problem: Problem, w0: np.ndarray, *, statement: Thm1Statement = CORRECTED,
               steps: int = 0) -> Thm1Result:
    """Check a Theorem-1 statement on one instance.

    Args:
        problem: the quadratic.
        w0: the initial point, shape (d,); ∇L(w0) must have no zero coordinate.
        statement: `PRINTED`, `CORRECTED`, `SHARP` or your own `Thm1Statement`.
        steps: if > 0, also run `quadlab.run(problem, "adam", ...)` for this many steps and
            check every measured per-step ratio against the bound.

    Raises:
        ValueError: bad w0 or a zero gradient coordinate at w0.
    """
    results = check_thm1_batch(problem, np.asarray(w0, dtype=np.float64)[None, :],
                               statement=statement, steps=steps)
    return results[0]


def check_thm1_batch(problem: Problem, w0s: np.ndarray, *, statement: Thm1Statement = CORRECTED,
                     steps: int = 0) -> list[Thm1Result]:
    """`check_thm1` for many initial points of one problem (one `quadlab.run` call).

    Args:
        problem: The quadratic.
        w0s: Initial points, shape ``(n, d)``.
        statement: Which Theorem-1 statement (printed or corrected).
        steps: If > 0, also run ``quadlab.run(problem, "adam", ...)`` for this many steps and
            check every measured per-step ratio against the bound.
    """
    w0s = np.asarray(w0s, dtype=np.float64)
    if w0s.ndim != 2 or w0s.shape[1] != problem.d:
        raise ValueError(f"w0s must have shape (n, {problem.d}), got {w0s.shape}")
    consts = [quadlab.adam_constants(problem, w0) for w0 in w0s]
    for c in consts:
        if np.any(c.grad0 == 0.0):
            raise ValueError("the gradient at w0 has an exactly zero coordinate: simplified "
                             "Adam's preconditioner does not exist (Theorem 1 assumes a "
                             "random w0, where this has probability 0)")
    etas = np.array([statement.step(c) for c in consts])
    if not np.all(np.isfinite(etas) & (etas > 0)):
        raise ValueError("the statement's step size is not finite and positive")
    run_max = np.full(len(consts), np.nan)
    if steps > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", quadlab.DivergenceWarning)
            gaps = np.atleast_2d(quadlab.run(problem, "adam", lr=etas, w0=w0s, steps=int(steps),
                                             on_divergence="ignore"))
        floor = RUN_FLOOR * gaps[:, :1]
        ok = (gaps[:, :-1] > floor) & (gaps[:, 1:] > floor)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = np.where(ok, gaps[:, 1:] / gaps[:, :-1], np.nan)
        ratios[~np.isfinite(gaps[:, 1:])] = np.inf
        run_max = np.nanmax(np.where(np.isnan(ratios), -np.inf, ratios), axis=1)
    out = []
    for c, eta, rmax in zip(consts, etas, run_max, strict=True):
        nu_min, nu_max = extreme_modes(problem, c.grad0)
        log_sup = _log_sup(eta, nu_min, nu_max)
        log_b = statement.log_bound(c)
        ok_sup = (log_sup <= (1.0 - REL_TOL) * log_b
                  or np.exp(log_sup) <= np.exp(log_b) + ABS_TOL)
        ok_run = True
        if steps > 0 and rmax > 0:
            ok_run = bool(np.log(rmax) <= (1.0 - REL_TOL) * log_b + RUN_TOL
                          or rmax <= np.exp(log_b) + ABS_TOL)
        finite = np.isfinite(log_sup) and np.isfinite(log_b)
        loose = (log_sup / log_b) if (finite and log_sup < 0 and log_b < 0) else np.nan
        out.append(Thm1Result(holds=bool(ok_sup and ok_run), eta=float(eta), r=float(c.r),
                              max_kappa_block=float(np.max(c.kappa_blocks)), log_bound=log_b,
                              log_sup_ratio=log_sup, max_run_ratio=float(rmax),
                              eta_nu_max=float(eta * nu_max), looseness=float(loose)))
    return out


def _score(res: Thm1Result) -> float:
    """How close to violating: log ρ_sup − log bound, in units of |log bound| (> 0: violated);
    clipped to [−1e6, 1e6] (bounds of exactly 0 give −inf logs)."""
    if not np.isfinite(res.log_bound):
        return float(np.clip(np.exp(res.log_sup_ratio) / ABS_TOL - 1.0, -1e6, 1e6))
    with np.errstate(invalid="ignore"):
        s = (res.log_sup_ratio - res.log_bound) / max(abs(res.log_bound), 1e-300)
    return float(np.clip(np.nan_to_num(s, nan=0.0), -1e6, 1e6))


def _describe(problem: Problem, w0: np.ndarray, res: Thm1Result, source: str) -> dict:
    return {"source": source, "d": problem.d,
            "block_eigenvalues": [lam.tolist() for lam in problem.eigenvalues],
            "w0_minus_wstar": (np.asarray(w0) - problem.w_star).tolist(),
            "r": res.r, "max_kappa_block": res.max_kappa_block, "eta": res.eta,
            "eta_nu_max": res.eta_nu_max, "sup_step_ratio": float(np.exp(res.log_sup_ratio)),
            "bound": float(np.exp(res.log_bound)),
            "max_measured_step_ratio": res.max_run_ratio}


def _quantiles(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {}
    qs = np.quantile(x, [0.0, 0.1, 0.5, 0.9, 1.0])
    return dict(zip(("min", "p10", "median", "p90", "max"), qs.tolist(), strict=True))


def monte_carlo_instances(rng: np.random.Generator, n_problems: int, starts: int
                          ) -> list[tuple[Problem, np.ndarray, str]]:
    """Random problems × initial points for Theorem 1, cycling through problem families
    (moderate; very different block scales with well-conditioned blocks; very different κ_l)
    and start kinds (Gaussian, scaled, tiny gradient coordinates)."""
    families = (dict(max_log10_kappa=4.0, max_log10_block_kappa=3.0),
                dict(max_log10_kappa=6.0, max_log10_block_kappa=0.5),
                dict(max_log10_kappa=6.0, max_log10_block_kappa=5.0))
    out = []
    for i in range(n_problems):
        fam = families[i % len(families)]
        problem = random_problem(rng, **fam)
        kinds = [START_KINDS[j % len(START_KINDS)] for j in range(starts)]
        w0s = np.stack([random_start(problem, rng, kind=k) for k in kinds])
        out.append((problem, w0s, [f"monte-carlo {k} w0" for k in kinds]))
    return out


def search_thm1(*, effort: str | Effort = "default", seed: int = 0,
                statements: tuple[Thm1Statement, ...] = (PRINTED, CORRECTED)) -> list[Verdict]:
    """Search for counterexamples to Theorem 1 (each statement) and measure its looseness.

    Instances: the paper's four cases with Gaussian w0; Monte-Carlo random block-diagonal
    problems (`monte_carlo_instances`); a hypothesis search steered towards violations over
    `quadlab.strategies.problems_with_start(adversarial=True)`. Each instance is checked by its
    exact sup over t of the step ratio and, through `quadlab.run`, step by step.

    Args:
        effort: "test", "default", "high" or an `Effort`.
        seed: seeds the numpy Generator (Monte Carlo, initial points) and hypothesis.
        statements: which statements to check.
    """
    eff = get_effort(effort)
    rng = np.random.default_rng(seed)
    batches = []
    for case in quadlab.CASES:
        p = quadlab.make_problem(case, seed=seed)
        n0 = max(eff.thm1_starts, 10)
        batches.append((p, p.initial_points(n0, seed=rng), [f"case {case}, Gaussian w0"] * n0))
    batches += monte_carlo_instances(rng, eff.thm1_problems, eff.thm1_starts)

    r_hetero = quadlab.estimate_r(quadlab.make_problem("hetero", seed=seed), eff.thm1_r_trials,
                                  seed=rng)
    r_homo = quadlab.estimate_r(quadlab.make_problem("homo", seed=seed), eff.thm1_r_trials,
                                seed=rng)
    out = []
    for st in statements:
        results, violations = [], []
        by_source: dict[str, list[int]] = {}
        for problem, w0s, sources in batches:
            for w0, res, source in zip(w0s, check_thm1_batch(problem, w0s, statement=st,
                                                             steps=eff.thm1_steps), sources,
                                       strict=True):
                results.append(res)
                key = source if source.startswith("monte") else "paper cases, Gaussian w0"
                tally = by_source.setdefault(key, [0, 0])
                tally[0] += int(not res.holds)
                tally[1] += 1
                if not res.holds:
                    violations.append(_describe(problem, w0, res, source))

        def evaluate(case, st=st):
            problem, w0 = case
            if np.any(problem.grad(w0) == 0.0):
                return None
            res = check_thm1(problem, w0, statement=st, steps=20)
            return _score(res), (res, problem, w0)

        hyp = hypothesis_search(qs.problems_with_start(adversarial=True), evaluate,
                                max_examples=eff.thm1_hypothesis, seed=seed)
        for res, problem, w0 in hyp:
            results.append(res)
            if not res.holds:
                violations.append(_describe(problem, w0, res, "hypothesis"))
        scores = np.array([_score(r) for r in results])
        loose = np.array([r.looseness for r in results])
        diverging = sum(r.eta_nu_max >= 2.0 for r in results)
        evidence = {
            "instances_tried": len(results),
            "instances_violating": len(violations),
            "fraction_violating": len(violations) / len(results),
            "instances_diverging (η·ν_max >= 2)": diverging,
            "hypothesis_examples": len(hyp),
            "worst_excess": float(scores.max()),
            "worst_excess_meaning": "max over instances of (log sup_t ratio − log bound)/|log "
                                    "bound|; > 0 means violated",
            "looseness (log sup ratio / log bound)": _quantiles(loose),
            "looseness_meaning": "iterations the bound predicts ÷ iterations the exact rate "
                                 "needs (>= 1 when the bound holds)",
            "r_over_instances": _quantiles(np.array([r.r for r in results])),
            "r_hetero_gaussian_w0": {**_quantiles(r_hetero),
                                     "P(r <= 1000)": float(np.mean(r_hetero <= 1000)),
                                     "trials": int(r_hetero.size),
                                     "paper": "P(r <= 1000) ≈ 2/3"},
            "r_homo_gaussian_w0": {**_quantiles(r_homo),
                                   "P(r <= 1000)": float(np.mean(r_homo <= 1000))},
            "tolerance": f"violated iff log sup ratio > (1 − {REL_TOL:g})·log bound; measured "
                         f"quadlab.run ratios (t < {eff.thm1_steps}) allowed +{RUN_TOL:g} in log",
        }
        evidence["violating_by_source"] = {k: f"{v[0]}/{v[1]}" for k, v in by_source.items()}
        if violations:
            paper = [v for v in violations if v["source"].startswith("case hetero")]
            evidence["counterexample"] = paper[0] if paper else min(violations,
                                                                   key=lambda v: v["d"])
        else:
            tight = results[int(np.argmax(scores))]
            evidence["tightest_instance"] = {"r": tight.r, "max_kappa_block":
                                             tight.max_kappa_block,
                                             "sup_step_ratio": float(np.exp(tight.log_sup_ratio)),
                                             "bound": float(np.exp(tight.log_bound)),
                                             "looseness": tight.looseness}
        if st is CORRECTED:
            sharp = [check_thm1_batch(p, w, statement=SHARP) for p, w, _ in batches]
            flat = [x for b in sharp for x in b]
            evidence["sharp_form (1 − 1/(√r max κ_l))²"] = {
                "instances": len(flat), "violating": sum(not x.holds for x in flat),
                "tightness (min looseness, 1 = attained)": float(np.nanmin(
                    [x.looseness for x in flat]))}
        out.append(Verdict(id="thm1", form=st.form, statement=st.text,
                           verdict="violated" if violations else "holds", evidence=evidence))
    return out
