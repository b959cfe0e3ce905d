"""Table 1 and Figure 7: JS0 at initialization and the SGD–Adam gap for a set of tasks.

``table1`` runs :func:`nets.studies.gap.measure_gap` for each task (cached, so a second call only
reads
files) and correlates JS0 with the gap at each batch size with :func:`nets.studies.spearman`. Tasks
whose gap is not finite at a batch size (every SGD or every Adam rate diverged) are left out of
that batch size's correlation and listed in ``excluded``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nets.engine.density import DensityRecipe
from nets.engine.distributed import Communicator
from nets.studies.correlation import SpearmanResult, spearman
from nets.studies.gap import PROFILES, GapProfile, GapReport, measure_gap
from nets.studies.tasks import Task, zoo_task
from nets.zoo import models as zoo

__all__ = ["METRICS", "Table1", "correlate", "table1"]


@dataclass(frozen=True)
class Table1:
    """JS0 and gaps per task, and their rank correlation per batch size.

    Attributes:
        profile: Profile name.
        reports: One :class:`nets.studies.gap.GapReport` per task.
        correlations: ``{batch size: SpearmanResult or None}`` (``None``: fewer than 3 usable
            tasks or a constant coordinate).
        excluded: ``{batch size: tasks left out (non-finite gap)}``.
        js_settings: How JS0 was measured (``steps``, ``probes``, ``recipe``).
    """

    profile: str
    reports: tuple[GapReport, ...]
    correlations: dict
    excluded: dict
    js_settings: dict

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes of the reports, in order (empty without reports)."""
        return tuple(r.batch_size for r in self.reports[0].results) if self.reports else ()

    def rows(self) -> list[dict]:
        """One flat row per task: js0, its interval, and per batch size the gap and rates."""
        out = []
        for rep in self.reports:
            row: dict = {"task": rep.task, "js0": rep.js0, "js0_low": rep.js0_low,
                         "js0_high": rep.js0_high}
            for r in rep.results:
                b = r.batch_size
                row[f"gap_b{b}"] = r.gap
                row[f"rel_gap_b{b}"] = r.rel_gap
                row[f"heldout_rel_gap_b{b}"] = r.heldout_rel_gap
                row[f"sgd_lr_b{b}"] = r.sgd.lr
                row[f"adam_lr_b{b}"] = r.adam.lr
                row[f"sgd_loss_b{b}"] = r.sgd.final_loss
                row[f"adam_loss_b{b}"] = r.adam.final_loss
            out.append(row)
        return out

    def to_dict(self) -> dict:
        """The reports, rows, correlations (with intervals) and exclusions as plain values."""
        corr = {}
        for b, c in self.correlations.items():
            corr[str(b)] = None if c is None else {
                "rho": c.rho, "pvalue": c.pvalue, "n": c.n, "interval95_bootstrap":
                [c.low, c.high], "interval95_fisher": [c.fisher_low, c.fisher_high]}
        return {"profile": self.profile, "js_settings": self.js_settings,
                "rows": self.rows(), "spearman": corr,
                "excluded": {str(b): list(v) for b, v in self.excluded.items()},
                "reports": [r.to_dict() for r in self.reports]}


#: The gap metrics :func:`correlate` accepts (attributes of
#: :class:`nets.studies.gap.GapResult`).
METRICS = ("gap", "rel_gap", "heldout_rel_gap")


def correlate(reports: Sequence[GapReport], batch_size: int, *, rng: np.random.Generator,
              n_boot: int = 2000, metric: str = "gap",
              exclude: Collection[str] = ()) -> tuple[SpearmanResult | None, list[str]]:
    """Spearman ρ between JS0 and a gap metric at ``batch_size`` over ``reports``.

    Args:
        reports: One gap report per task.
        batch_size: The batch size whose gaps are correlated.
        rng: Generator of the bootstrap.
        n_boot: Bootstrap resamples.
        metric: One of :data:`METRICS`: ``"gap"`` (``ln(L̄_SGD / L̄_Adam)``), ``"rel_gap"``
            (the bounded Adam − SGD relative loss reduction on the training pool) or
            ``"heldout_rel_gap"`` (the same on held-out data).
        exclude: Tasks left out (e.g. those whose runs did not train at this budget).

    Returns:
        ``(result or None, excluded task names)``: tasks are excluded when named in
        ``exclude`` or when their metric or JS0 is not finite.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    xs, ys, excluded = [], [], []
    for rep in reports:
        r = next((r for r in rep.results if r.batch_size == batch_size), None)
        y = math.nan if r is None else getattr(r, metric)
        if rep.task in exclude or not (math.isfinite(y) and math.isfinite(rep.js0)):
            excluded.append(rep.task)
            continue
        xs.append(rep.js0)
        ys.append(y)
    if len(xs) < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return None, excluded
    return spearman(xs, ys, rng=rng, n_boot=n_boot), excluded


def table1(tasks: Sequence[Task] | None = None, profile: str | GapProfile = "quick", *,
           cache_dir: str | os.PathLike | None = None, seed: int = 0,
           progress: Callable[[str], None] | None = None,
           comm: Communicator | None = None,
           device: str | torch.device = "cpu") -> Table1:
    """Measure JS0 and the gap for every task and correlate them at each batch size.

    Args:
        tasks: The tasks (default: :func:`nets.studies.tasks.zoo_task` of every zoo model).
        profile: Budget (see :data:`nets.studies.gap.PROFILES`).
        cache_dir: Cache folder.
        seed: Seed of the correlation bootstrap.
        progress: Called with a note after each training run.
        comm: :class:`nets.engine.distributed.DistributedCommunicator` to share each task's grid out
            among the ranks (see :func:`nets.studies.gap.measure_gap`).
        device: Where to train and compute JS0 (:func:`nets.studies.gap.measure_gap`).
    """
    tasks = [zoo_task(m) for m in zoo.MODELS] if tasks is None else list(tasks)
    if len(tasks) < 1:
        raise ValueError("no tasks given")
    reports = tuple(measure_gap(t, profile, cache_dir=cache_dir, progress=progress, comm=comm,
                                device=device)
                    for t in tasks)
    corr, excl = {}, {}
    for b in (r.batch_size for r in reports[0].results):
        corr[b], excl[b] = correlate(reports, b, rng=np.random.default_rng([seed, b]))
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    js = {"steps": prof.js_steps, "probes": prof.js_probes, "recipe": DensityRecipe().label}
    return Table1(prof.name, reports, corr, excl, js)
