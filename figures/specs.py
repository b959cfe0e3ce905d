"""The registry of figures, in report order."""

from __future__ import annotations

from . import fig8_quadratic, proofs_verdicts
from .registry import FigureSpec

FIGURES: dict[str, FigureSpec] = {spec.name: spec for spec in (
    fig8_quadratic.SPEC,
    proofs_verdicts.SPEC,
)}
