"""The one verdict helper: a claim is split into parts, each part is judged against the noise
of its measurement, and the parts combine into one outcome.

A part is one checkable statement ("JS0 is larger for Transformers than for CNNs", "SGD lags
Adam on the mixer at B = 64"). Its outcome is

* ``holds`` / ``fails``: the measurement decides it with a margin tied to its noise (a
  bootstrap interval for spectral statistics, the spread over ≥ 3 seeds for training
  outcomes);
* ``inconclusive``: the interval allows both answers (or fewer than 3 seeds measured it);
* ``not measurable``: the runs behind it did not train (tuned rate at a grid edge, or final loss
  within noise of the initial one), or the settings lack what the part needs.

The figure's outcome (:data:`Outcome`): ``agrees`` when every part holds; ``disagrees`` when a
part fails and none holds; ``partly`` when some part holds and another fails or is undecided;
otherwise ``not measurable at this budget`` when any part was not measurable, else
``inconclusive``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["MIN_SEEDS", "NOT_MEASURABLE", "OUTCOMES", "Outcome", "Part", "PartOutcome",
           "combine", "exceeds", "exceeds_over_seeds", "explain", "groups_ordered", "trained"]

NOT_MEASURABLE = "not measurable at this budget"
Outcome = Literal["agrees", "partly", "disagrees", "inconclusive",
                  "not measurable at this budget"]
OUTCOMES: tuple[str, ...] = ("agrees", "partly", "disagrees", "inconclusive", NOT_MEASURABLE)
PartOutcome = Literal["holds", "fails", "inconclusive", "not measurable"]
#: Training outcomes need at least this many seeds to estimate their noise.
MIN_SEEDS = 3


@dataclass(frozen=True)
class Part:
    """One part of a claim and how the measurement judged it.

    Attributes:
        name: The statement, in the paper's terms.
        outcome: ``holds``, ``fails``, ``inconclusive`` or ``not measurable``.
        detail: The numbers and the margin that decided it.
    """

    name: str
    outcome: PartOutcome
    detail: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in ("holds", "fails", "inconclusive", "not measurable"):
            raise ValueError(f"part outcome must be holds/fails/inconclusive/not measurable, "
                             f"got {self.outcome!r}")


def combine(parts: Sequence[Part]) -> Outcome:
    """The figure's outcome from its parts (rules in the module docstring).

    Raises:
        ValueError: no parts.
    """
    if not parts:
        raise ValueError("a verdict needs at least one part of the claim")
    kinds = [p.outcome for p in parts]
    holds, fails = kinds.count("holds"), kinds.count("fails")
    if holds == len(kinds):
        return "agrees"
    if fails and not holds:
        return "disagrees"
    if holds:
        return "partly"
    return NOT_MEASURABLE if "not measurable" in kinds else "inconclusive"


def explain(parts: Sequence[Part]) -> str:
    """One sentence per part: ``name: outcome (detail)``."""
    return " ".join(f"[{p.outcome}] {p.name}" + (f" ({p.detail})" if p.detail else "") + "."
                    for p in parts)


def exceeds(name: str, low: float, high: float, *, threshold: float = 0.0,
            what: str = "interval") -> Part:
    """Part "quantity > threshold" from a confidence interval ``[low, high]``.

    ``holds`` when ``low > threshold``, ``fails`` when ``high < threshold``, ``inconclusive``
    when the interval contains the threshold, ``not measurable`` when a bound is not finite.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return Part(name, "not measurable", f"{what} [{low}, {high}] not finite")
    if low > high:
        raise ValueError(f"interval bounds out of order: [{low}, {high}]")
    detail = f"{what} [{low:+.3g}, {high:+.3g}] against {threshold:g}"
    if low > threshold:
        return Part(name, "holds", detail)
    if high < threshold:
        return Part(name, "fails", detail)
    return Part(name, "inconclusive", detail + ": contains it")


def exceeds_over_seeds(name: str, values: Sequence[float], *, threshold: float = 0.0,
                       k: float = 2.0) -> Part:
    """Part "quantity > threshold" from one value per seed.

    The margin is ``k`` standard errors of the seed mean (``k = 2``: about a 95% interval):
    ``holds`` when ``mean − k·se > threshold``, ``fails`` when ``mean + k·se < threshold``,
    ``inconclusive`` otherwise or with fewer than :data:`MIN_SEEDS` seeds (the noise is then
    unknown), ``not measurable`` when a value is not finite.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return Part(name, "not measurable", f"seed values {v.tolist()} missing or not finite")
    mean = float(v.mean())
    if v.size < MIN_SEEDS:
        return Part(name, "inconclusive", f"{mean:+.3g} from {v.size} seed(s); at least "
                                          f"{MIN_SEEDS} are needed to know the noise")
    se = float(v.std(ddof=1) / math.sqrt(v.size))
    return exceeds(name, mean - k * se, mean + k * se, threshold=threshold,
                   what=f"mean ± {k:g} s.e. over {v.size} seeds")


def groups_ordered(name: str, above: Sequence[tuple[float, float]],
                   below: Sequence[tuple[float, float]]) -> Part:
    """Part "every member of one group exceeds every member of another", from intervals.

    ``holds`` when the lowest lower bound of ``above`` exceeds the highest upper bound of
    ``below``; ``fails`` when the highest upper bound of ``above`` is below the lowest lower
    bound of ``below`` (the order is reversed beyond noise); ``inconclusive`` otherwise;
    ``not measurable`` when a group is empty or a bound is not finite.
    """
    if not above or not below:
        return Part(name, "not measurable", "a group has no member in these settings")
    bounds = np.asarray([*above, *below], dtype=np.float64)
    if not np.all(np.isfinite(bounds)):
        return Part(name, "not measurable", "an interval is not finite")
    a_lo, a_hi = min(lo for lo, _ in above), max(hi for _, hi in above)
    b_lo, b_hi = min(lo for lo, _ in below), max(hi for _, hi in below)
    detail = f"first group [{a_lo:.3g}, {a_hi:.3g}], second [{b_lo:.3g}, {b_hi:.3g}]"
    if a_lo > b_hi:
        return Part(name, "holds", detail)
    if a_hi < b_lo:
        return Part(name, "fails", detail)
    return Part(name, "inconclusive", detail + ": the intervals overlap")


def trained(initial: float, final_by_seed: Sequence[float], *, min_drop: float = 0.01) -> bool:
    """Did a run train? Its final loss (mean over seeds) is below the initial loss by more than
    ``min_drop`` of it and by more than twice the seeds' spread."""
    f = np.asarray(final_by_seed, dtype=np.float64)
    if not (math.isfinite(initial) and f.size and np.all(np.isfinite(f))):
        return False
    spread = float(f.std(ddof=1)) if f.size > 1 else 0.0
    drop = initial - float(f.mean())
    return drop > min_drop * abs(initial) and drop > 2.0 * spread
