"""Run every checker and format the verdict table (the CLI's engine; no printing here)."""

from __future__ import annotations

from labkit.tables import format_table as _format

from .efforts import Effort, get_effort
from .prop1 import search_prop1
from .prop2 import search_prop2
from .table2 import search_table2
from .thm1 import search_thm1
from .verdict import Verdict

CHECKERS = {"prop1": search_prop1, "thm1": search_thm1, "prop2": search_prop2,
            "table2": search_table2}


def run_all(*, effort: str | Effort = "default", seed: int = 0,
            only: tuple[str, ...] | None = None) -> list[Verdict]:
    """All verdicts (as-printed and corrected for each claim), in the order prop1, thm1, prop2,
    table2.

    Args:
        effort: Effort name or ``Effort`` (instances and grid sizes).
        seed: Seed of every checker.
        only: Claim ids to check (default: all).

    Raises:
        ValueError: unknown effort or claim id in `only`.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    get_effort(effort)
    ids = tuple(CHECKERS) if only is None else tuple(only)
    bad = [i for i in ids if i not in CHECKERS]
    if bad:
        raise ValueError(f"unknown claim id(s) {bad}; choose from {', '.join(CHECKERS)}")
    out: list[Verdict] = []
    for claim in ids:
        out.extend(CHECKERS[claim](effort=effort, seed=seed))
    return out


def _key_number(v: Verdict) -> str:
    e = v.evidence
    if v.id == "prop1":
        return f"min ratio/bound {e['worst_ratio_over_bound']:.6g}"
    if v.id == "thm1":
        loose = e["looseness (log sup ratio / log bound)"].get("median", float("nan"))
        return (f"{e['instances_violating']}/{e['instances_tried']} violate; "
                f"median looseness {loose:.3g}")
    if v.id == "prop2":
        if v.form == "as-printed":
            n = e['counterexample']['exact_zero_trajectories']
            return f"w0 = η → L = 0 exactly ({n} cases)"
        return f"{e['instances_tried'] - e['undecided']}/{e['instances_tried']} reach cycle η²/8"
    return (f"GD exp {e['gd_exponent_vs_kappa']:.3f}; Adam exp "
            f"{e['adam_exponent_vs_r_maxkappa_l']:.3f}, diverged {e['adam_diverged']}")


def format_table(verdicts: list[Verdict]) -> str:
    """A plain-text verdict table: id, form, verdict, key number.

    Args:
        verdicts: The verdicts, in display order.
    """
    rows = [{"claim": v.id, "form": v.form, "verdict": v.verdict, "key": _key_number(v)}
            for v in verdicts]
    return _format([*rows], [("claim", "claim", ""), ("form", "form", ""),
                             ("verdict", "verdict", ""), ("key", "key evidence", "")])
