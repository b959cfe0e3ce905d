"""The quadratic study of the paper's Figure 8: tuned GD vs Adam on the four Hessian cases.

For each case and seed: the problem `make_problem(case, seed)`, one standard Gaussian initial
point (`problem.initial_points(seed=seed)`), and for each optimizer the step size tuned on its
default log grid (`quadlab.tuning`) by the iterations needed to reach `tol` × the initial gap.

The tuned runs are independent: `run_study(map_fn=...)` hands them to any map, e.g.
`nets.engine.distributed.DistributedCommunicator.map` to share them out among `torchrun` processes
(`torchrun --nproc_per_node=2 -m quadlab sweep`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quadlab.cases import CASES, make_problem
from quadlab.optimizers import make_optimizer
from quadlab.tuning import tune_lr
from quadlab.validation import as_sequence, check_choice, check_positive, check_seed, check_steps

#: label -> (optimizer, hyper-parameters): the optimizers of the study.
DEFAULT_OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "GD": ("gd", {}),
    "Adam β2=1": ("adam", {"beta1": 0.0, "beta2": 1.0}),
    "blockwise GD": ("blockwise-gd", {}),
    "Adam β2=0.999": ("adam", {"beta1": 0.0, "beta2": 0.999}),
}


@dataclass(frozen=True)
class StudyRun:
    """One tuned run: case, seed, optimizer label, chosen step, iterations to tol, gap curve."""

    case: str
    seed: int
    optimizer: str
    lr: float
    iterations: float
    final_gap: float
    at_edge: bool
    gaps: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class StudyResult:
    """All runs of a study with its settings."""

    runs: tuple[StudyRun, ...]
    cases: tuple[str, ...]
    optimizers: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    tol: float

    def iterations(self, case: str, optimizer: str) -> np.ndarray:
        """Iterations to tolerance over seeds (+inf where not reached), shape (seeds,).

        Args:
            case: the Hessian case.
            optimizer: the optimizer label.
        """
        return np.array([r.iterations for r in self.runs
                         if r.case == case and r.optimizer == optimizer])

    def curve(self, case: str, optimizer: str, seed: int) -> np.ndarray:
        """The gap trajectory of one tuned run.

        Args:
            case: the Hessian case.
            optimizer: the optimizer label.
            seed: the seed.
        """
        for r in self.runs:
            if (r.case, r.optimizer, r.seed) == (case, optimizer, seed):
                return r.gaps
        raise KeyError((case, optimizer, seed))

    def speedup(self, case: str, baseline: str = "GD", other: str = "Adam β2=1") -> float:
        """Median iterations of `baseline` divided by median iterations of `other`.

        Args:
            case: the Hessian case.
            baseline: the label in the numerator.
            other: the label in the denominator.

        +inf if only `baseline` never reached the tolerance, 0 if only `other` never did, NaN if
        neither did.
        """
        with np.errstate(invalid="ignore"):
            return float(np.median(self.iterations(case, baseline))
                         / np.median(self.iterations(case, other)))

    def summary(self) -> dict:
        """Settings, `table()` rows and the GD/Adam(β2=1) speed-up per case (JSON-ready)."""
        return {"steps": self.steps, "tol": self.tol, "seeds": list(self.seeds),
                "rows": self.table(),
                "speedup_gd_over_adam": {c: self.speedup(c) for c in self.cases}}

    def table(self) -> list[dict]:
        """One row per case and optimizer: median/min/max iterations, seeds reaching tol."""
        rows = []
        for case in self.cases:
            for opt in self.optimizers:
                it = self.iterations(case, opt)
                rows.append({
                    "case": case, "optimizer": opt,
                    "median_iterations": float(np.median(it)),
                    "min_iterations": float(it.min()), "max_iterations": float(it.max()),
                    "reached": int(np.isfinite(it).sum()), "seeds": int(it.size),
                    "median_lr": float(np.median([r.lr for r in self.runs
                                                 if r.case == case and r.optimizer == opt])),
                })
        return rows


#: ``map_fn(fn, items) -> [fn(item) for item in items]`` (any order of evaluation).
MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], list]


def _serial_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list:
    return [fn(x) for x in items]


def run_study(*, cases: Sequence[str] = CASES, seeds: Sequence[int] = (0, 1, 2),
              steps: int = 60_000, tol: float = 1e-6,
              optimizers: dict[str, tuple[str, dict]] | None = None,
              spectra: str = "synthetic",
              progress: Callable[[str], None] | None = None,
              map_fn: MapFn | None = None) -> StudyResult:
    """Run the study.

    Returns:
        The tuned runs with the study's settings (`StudyResult`).

    Raises:
        ValueError, TypeError: empty or unknown cases, empty or negative seeds, bad steps, tol,
            optimizers or spectra (each naming the argument).

    Args:
        cases: Hessian cases (see `quadlab.make_problem`).
        seeds: problem/initial-point seeds.
        steps: iteration budget per run.
        tol: relative gap to reach.
        optimizers: label -> (name, hyper); default `DEFAULT_OPTIMIZERS`.
        spectra: "synthetic" or "measured" block spectra for the "transformer" and "cnn" cases
            (see `quadlab.make_problem`).
        progress: called with a short description after each tuned run (for progress bars).
        map_fn: evaluates the tuned runs, one per (case, seed, optimizer); default a loop.
            Results must not depend on where a run is evaluated (they do not: each run is
            determined by its case, seed and optimizer).
    """
    optimizers = DEFAULT_OPTIMIZERS if optimizers is None else optimizers
    cases = [check_choice(c, CASES, what="case")
             for c in as_sequence(cases, name="cases", of="case names")]
    seeds = [check_seed(x) for x in as_sequence(seeds, name="seeds", of="ints >= 0 (e.g. "
                                                "`--seeds 3` for seeds 0, 1, 2)")]
    check_choice(spectra, ("synthetic", "measured"), what="spectra")
    if not isinstance(optimizers, dict) or not optimizers:
        raise TypeError("optimizers must be a non-empty dict label -> (optimizer name, "
                        f"hyper-parameters), got {type(optimizers).__name__}")
    for label, value in optimizers.items():
        if not (isinstance(value, tuple | list) and len(value) == 2
                and isinstance(value[1], dict)):
            raise TypeError(f"optimizers[{label!r}] must be (optimizer name, hyper-parameter "
                            f"dict), got {value!r}")
        make_optimizer(value[0], **value[1])
    steps = check_steps(steps)
    tol = check_positive(tol, name="tol")
    jobs = [(case, int(seed), label) for case in cases for seed in seeds for label in optimizers]

    @functools.cache  # one problem per case and seed (per process), shared by the optimizers
    def problem_of(case: str, seed: int):
        extra = {"spectra": spectra} if case in ("transformer", "cnn") else {}
        return make_problem(case, seed=seed, **extra)

    def one(job: tuple[str, int, str]) -> StudyRun:
        case, seed, label = job
        problem = problem_of(case, seed)
        name, hyper = optimizers[label]
        res = tune_lr(problem, name, w0=problem.initial_points(seed=seed), steps=steps, tol=tol,
                      **hyper)
        if progress is not None:
            progress(f"{case} seed {seed} {label}")
        return StudyRun(case, seed, label, res.lr, res.best_iterations, float(res.gaps[-1]),
                        res.at_edge, res.gaps)

    runs = (map_fn or _serial_map)(one, jobs)
    return StudyResult(tuple(runs), tuple(cases), tuple(optimizers), tuple(int(s) for s in seeds),
                       steps, tol)
