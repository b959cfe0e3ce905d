"""The verdict record every checker returns, and its JSON form."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

FORMS = ("as-printed", "corrected")
VERDICTS = ("holds", "violated", "inconclusive")
IDS = ("prop1", "thm1", "prop2", "table2")


def jsonable(x: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats into plain JSON values.

    Non-finite floats become the strings "inf", "-inf" and "nan" (JSON has no such numbers).
    """
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        v = float(x)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return x


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one claim of the paper in one form.

    Attributes:
        id: which claim: "prop1", "thm1", "prop2" or "table2".
        form: "as-printed" (literally the seed text) or "corrected" (nearest statement that
            holds; its `statement` says what changed).
        statement: the inequality in words and symbols, with every constant.
        verdict: "holds", "violated" or "inconclusive" — always the result of a computation.
        evidence: numbers behind the verdict (instances tried, worst ratio vs bound,
            counterexample, tightness, tolerances).
    """

    id: Literal["prop1", "thm1", "prop2", "table2"]
    form: Literal["as-printed", "corrected"]
    statement: str
    verdict: Literal["holds", "violated", "inconclusive"]
    evidence: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.id not in IDS:
            raise ValueError(f"unknown claim id {self.id!r}; choose one of {', '.join(IDS)}")
        if self.form not in FORMS:
            raise ValueError(f"unknown form {self.form!r}; choose one of {', '.join(FORMS)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; choose one of "
                             f"{', '.join(VERDICTS)}")

    def to_dict(self) -> dict:
        """Plain-JSON dict with the keys id, form, statement, verdict, evidence."""
        return {"id": self.id, "form": self.form, "statement": self.statement,
                "verdict": self.verdict, "evidence": jsonable(self.evidence)}

    def to_json(self, **kwargs) -> str:
        """`json.dumps` of `to_dict()` (kwargs go to `json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)


def decide(n_violations: int, n_undecided: int = 0) -> Literal["holds", "violated",
                                                                 "inconclusive"]:
    """Verdict from counts: any violation → "violated"; else any undecided → "inconclusive"."""
    if n_violations > 0:
        return "violated"
    if n_undecided > 0:
        return "inconclusive"
    return "holds"
