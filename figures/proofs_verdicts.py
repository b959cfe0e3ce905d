"""The proofs verdict table: every theoretical claim of §3.2, as printed and corrected.

The verdicts come from `proofs.run_all`; this module only lays them out for the report.
"""

from __future__ import annotations

from pathlib import Path

from labkit.tables import format_table
from proofs import run_all
from proofs.verdict import Verdict

from .registry import FigureSpec, Finding


def compute(*, effort: str, seed: int, progress=None) -> list[Verdict]:
    """All verdicts at the given effort."""
    verdicts = run_all(effort=effort, seed=seed)
    if progress is not None:
        progress(f"{len(verdicts)} verdicts")
    return verdicts


def draw(verdicts: list[Verdict], out_dir: Path) -> list[Path]:
    """A table, not a figure: nothing to draw."""
    return []


def findings(verdicts: list[Verdict]) -> Finding:
    """Do the claims hold as printed; if not, do their corrected forms?"""
    printed = {v.id: v.verdict for v in verdicts if v.form == "as-printed"}
    corrected = {v.id: v.verdict for v in verdicts if v.form == "corrected"}
    if all(x == "holds" for x in printed.values()):
        verdict = "agrees"
    elif all(corrected.get(k) == "holds" for k, x in printed.items() if x != "holds"):
        verdict = "partly"
    else:
        verdict = "disagrees"
    failed = [k for k, x in printed.items() if x != "holds"]
    measured = (f"As printed, {len(printed) - len(failed)} of {len(printed)} claims hold"
                + (f" ({', '.join(failed)} do not)" if failed else "") + "; corrected forms: "
                + ", ".join(f"{k} {x}" for k, x in corrected.items()) + ".")
    rows = [{"id": v.id, "form": v.form, "verdict": v.verdict,
             "statement": v.statement.replace("|", "\\|")} for v in verdicts]
    table = format_table(rows, [("id", "claim", ""), ("form", "form", ""),
                                  ("verdict", "verdict", ""), ("statement", "statement", "")],
                         markdown=True)
    return Finding(measured=measured, verdict=verdict, table=table)


SPEC = FigureSpec(
    name="proofs_verdicts",
    title="Theory (§3.2) — Proposition 1, Theorem 1, Proposition 2, Table 2, checked",
    claim=("Proposition 1 (GD lower bound, tight), Theorem 1 (simplified Adam's rate with the "
           "constant r and step η = min_l 1/C_{l,1}), Proposition 2 (constant-step Adam with "
           "β2 < 1 does not converge on w²/2) and Table 2 (Õ(κ) vs Õ(r·max κ_l) vs ✗)."),
    caption="Verdicts of `python -m proofs` (details and evidence: `python -m proofs --json`).",
    settings={"tiny": {"effort": "test", "seed": 0}, "quick": {"effort": "default", "seed": 0},
              "full": {"effort": "high", "seed": 0}},
    packages=("quadlab", "proofs"),
    compute=compute,
    draw=draw,
    findings=findings,
)
