"""What a figure is to the pipeline: how to compute its data, draw it, and say what it found.

Each figure module defines a `FigureSpec` named ``SPEC``; `FIGURES` lists them in report order.
Computation lives in the library (quadlab, proofs, nets); a spec only names the call and its
settings per profile, and `draw` only draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .verdict import OUTCOMES, Outcome, Part

#: tiny: seconds, for the tests; quick: the default (CPU, minutes); full: GPU-sized.
PROFILES = ("tiny", "quick", "full")

#: A figure's verdict: one of `figures.verdict.OUTCOMES`.
Verdict = Outcome


@dataclass(frozen=True)
class Finding:
    """What a figure measured, set against the paper's claim.

    Attributes:
        measured: one paragraph: the numbers that were measured.
        verdict: how the measurement compares with the claim (computed, never typed in: by
            `figures.verdict.combine` from ``parts`` where the figure judges parts).
        table: optional Markdown table with the numbers behind it.
        parts: the parts of the claim and how each was judged (`figures.verdict.Part`).
    """

    measured: str
    verdict: Verdict
    table: str = ""
    parts: tuple[Part, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in OUTCOMES:
            raise ValueError(f"verdict must be one of {OUTCOMES}, got {self.verdict!r}")


@dataclass(frozen=True)
class FigureSpec:
    """One figure or table of the paper.

    Attributes:
        name: file stem of the outputs (``<name>.png``, ``<name>.pdf``) and of its cache entry.
        title: heading in the report.
        claim: the paper's claim this figure tests, in words.
        caption: what the figure shows.
        settings: profile name -> keyword arguments of `compute`.
        packages: import paths of the packages whose code the result depends on (with
            ``figures``, the cache key; see :mod:`labkit.cache`).
        compute: ``compute(**settings, progress=callable) -> result`` (arrays, numbers,
            strings, containers and dataclasses of those packages: see :mod:`labkit.records`).
        draw: ``draw(result, out_dir) -> list of written paths``.
        findings: ``findings(result) -> Finding``.
    """

    name: str
    title: str
    claim: str
    caption: str
    settings: Mapping[str, dict]
    packages: tuple[str, ...]
    compute: Callable[..., Any]
    draw: Callable[[Any, Path], list[Path]]
    findings: Callable[[Any], Finding]

    def settings_for(self, profile: str) -> dict:
        """The settings of `profile` ("quick" or "full")."""
        if profile not in self.settings:
            raise ValueError(f"figure {self.name} has no profile {profile!r}; "
                             f"choose one of {', '.join(self.settings)}")
        return dict(self.settings[profile])
