"""The verdict record every checker returns, and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from labkit.jsonio import dumps, to_jsonable

FORMS = ("as-printed", "corrected")
VERDICTS = ("holds", "violated", "inconclusive")
IDS = ("prop1", "thm1", "prop2", "table2")


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
                "verdict": self.verdict, "evidence": to_jsonable(self.evidence)}

    def to_json(self, **kwargs: Any) -> str:
        """Strict JSON of :meth:`to_dict` (:func:`labkit.jsonio.dumps`; kwargs go to
        :func:`json.dumps`).

        Args:
            **kwargs: Passed to :func:`json.dumps` (e.g. ``indent``).
        """
        return dumps(self.to_dict(), **kwargs)


def decide(n_violations: int, n_undecided: int = 0) -> Literal["holds", "violated",
                                                                 "inconclusive"]:
    """Verdict from counts: any violation → "violated"; else any undecided → "inconclusive"."""
    if n_violations > 0:
        return "violated"
    if n_undecided > 0:
        return "inconclusive"
    return "holds"
