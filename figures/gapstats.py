"""Parts of a verdict measured on tuned SGD-vs-Adam runs (`nets.studies.gap.GapResult`): the
per-seed gap, whether the runs trained, and the gap metrics shown side by side.

**The verdicts use the bounded metric on the training pool**: per seed (the seeds of the tuned
rates paired, both optimizers starting from the same initialization and loss ``L₀,s``)
``Δ_s = (L_SGD,s − L_Adam,s) / L₀,s``, Adam's relative loss reduction minus SGD's
(`nets.studies.gap.relative_gap`); its spread over seeds is the noise a training outcome is
judged against (figures.verdict). Training loss, because the paper's claim is about
optimization speed; bounded, because ``ln(L_SGD / L_Adam)`` grows without limit when Adam nearly
memorizes a small pool. The report shows beside it the old ``ln(L_SGD / L_Adam)`` and the same
``Δ`` on held-out data (what the budget's progress is worth on samples never trained on).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nets.studies.gap import GapResult, TunedOptimizer

from .verdict import Part, exceeds_over_seeds, trained

__all__ = ["describe", "gap_difference_part", "gap_part", "not_measurable_reason",
           "relative_reduction", "seed_gaps", "seed_losses", "seed_relative_gaps"]


def seed_losses(opt: TunedOptimizer) -> np.ndarray:
    """Final pool loss of each seed at the tuned learning rate (empty if all diverged)."""
    if opt.all_diverged:
        return np.array([])
    score = next(g for g in opt.grid if g.lr == opt.lr)
    return np.asarray(score.final_losses, dtype=np.float64)


def seed_gaps(r: GapResult) -> np.ndarray:
    """``ln(L_SGD,s / L_Adam,s)`` per seed at the tuned rates (empty if either diverged)."""
    s, a = seed_losses(r.sgd), seed_losses(r.adam)
    if s.size == 0 or a.size == 0 or s.size != a.size:
        return np.array([])
    with np.errstate(divide="ignore"):
        return np.log(s / a)


def seed_relative_gaps(r: GapResult, data: str = "train") -> np.ndarray:
    """``Δ_s = (L_SGD,s − L_Adam,s) / L₀,s`` per seed at the tuned rates (the verdicts' metric;
    empty if either optimizer diverged at every rate).

    Args:
        r: The tuned runs at one batch size.
        data: ``"train"`` (the pool) or ``"heldout"``.
    """
    return r.seed_relative_gaps(data)


def relative_reduction(opt: TunedOptimizer) -> float:
    """``(L₀ − L_final) / L₀`` of the tuned runs (seed mean): bounded above by 1, comparable
    across models, and not blown up when one optimizer nearly memorizes the pool."""
    if opt.all_diverged or opt.curve.size == 0 or not opt.curve[0] > 0:
        return math.nan
    return float((opt.curve[0] - opt.final_loss) / opt.curve[0])


def not_measurable_reason(r: GapResult) -> str | None:
    """Why this batch size's gap is not measurable at this budget, or ``None`` if it is: a
    tuned rate at its grid's edge (the optimum may lie outside), or an optimizer that did not
    train (final loss within 1% or within twice the seeds' spread of the initial loss)."""
    for opt in (r.sgd, r.adam):
        if opt.all_diverged:
            return f"{opt.optimizer} diverged at every rate"
        if opt.at_edge:
            return f"{opt.optimizer}'s tuned rate {opt.lr:g} is at the edge of its grid"
        if not trained(float(opt.curve[0]), seed_losses(opt)):
            return (f"{opt.optimizer} did not train (loss {opt.curve[0]:.4g} → "
                    f"{opt.final_loss:.4g})")
    return None


def gap_part(name: str, r: GapResult) -> Part:
    """Part "SGD lags Adam at this batch size": the per-seed bounded gap ``Δ_s`` (training
    pool) exceeds 0 beyond its noise."""
    why = not_measurable_reason(r)
    if why is not None:
        return Part(name, "not measurable", why)
    return exceeds_over_seeds(name, seed_relative_gaps(r))


def gap_difference_part(name: str, larger: GapResult, smaller: GapResult) -> Part:
    """Part "the gap of ``larger`` exceeds the gap of ``smaller``", judged on the per-seed
    differences of the bounded gap ``Δ_s`` (seeds paired: same seed, same batch size)."""
    for r in (larger, smaller):
        why = not_measurable_reason(r)
        if why is not None:
            return Part(name, "not measurable", why)
    a, b = seed_relative_gaps(larger), seed_relative_gaps(smaller)
    if a.size != b.size:
        return Part(name, "not measurable", "different seeds")
    return exceeds_over_seeds(name, a - b)


def describe(results: Sequence[GapResult]) -> str:
    """``B = 8: Δ train +0.12, held-out +0.05, ln ratio 0.41; …`` for a report paragraph.

    Args:
        results: Tuned runs, one per batch size.
    """
    out = []
    for r in results:
        held = ("n/a" if not math.isfinite(r.heldout_rel_gap)
                else f"{r.heldout_rel_gap:+.2f}")
        out.append(f"B = {r.batch_size}: Adam − SGD relative loss reduction {r.rel_gap:+.2f} "
                   f"(held-out {held}), ln(L_SGD/L_Adam) = {r.gap:.2f}")
    return "; ".join(out)
