r"""SGD vs Adam: learning rates tuned on a log grid, the gap metrics, JS0, several batch sizes.

Protocol (per task and batch size ``B``): for each optimizer ``o`` ∈ {SGD with momentum, Adam}
and each learning rate ``η`` of its log grid, train runs under the same budget ``T`` steps (same
data order for both optimizers, see :mod:`nets.studies.training`). Which seeds run where is the
profile's ``protocol``:

* ``"grid"``: every rate of the grid with every seed;
* ``"first-seed"``: every rate with the first seed only; then the other seeds at the rate the
  first seed prefers and at its ``neighbours`` grid neighbours on each side; while the best
  rate over all seeds has a neighbour within ``neighbours`` steps that has not run every seed,
  that one is run too (so with ``neighbours = 1`` the tuned rate is always flanked by rates
  scored on every seed, by the grid's edge, or by a rate where the first seed diverged). It
  costs about ``|grid| + (2·neighbours + 1)·(seeds − 1)`` runs per optimizer and batch size
  instead of ``|grid|·seeds``, and selects the same rate as the whole grid whenever the
  seed-mean score has no other minimum beyond the explored neighbourhood.

The score of ``(o, η)`` is the mean over seeds of the final training (pool) loss; only rates
that ran every seed are eligible, and a rate where any seed diverged is excluded. The tuned rate
``η*_o`` minimizes the score; ``L̄_o`` is its score.

**Gap metrics** (positive: SGD lags Adam), all at the tuned rates:

* ``gap = ln(L̄_SGD / L̄_Adam)``: ``0.69`` means SGD ends with twice Adam's training loss. It is
  unbounded: when one optimizer nearly memorizes a small pool its loss tends to 0 and the ratio
  measures memorization, not optimization speed.
* ``rel_gap``, the bounded one: per seed ``s`` (both optimizers start from the same
  initialization, so from the same loss ``L₀,s``)

  .. math:: Δ_s = \frac{L_{SGD,s} − L_{Adam,s}}{L_{0,s}}
            = \frac{L_{0,s} − L_{Adam,s}}{L_{0,s}} − \frac{L_{0,s} − L_{SGD,s}}{L_{0,s}},

  Adam's relative loss reduction minus SGD's, averaged over seeds; it lies in ``[−1, 1]``
  whenever both final losses lie in ``[0, L₀]`` (:func:`relative_gap`).
* ``heldout_rel_gap``: the same on a held-out pool of the task's data (never trained on,
  :meth:`nets.studies.tasks.Task.heldout_pool`) evaluated at the budget with the rates tuned on
  training loss (``nan`` without a held-out pool): it says whether what Adam gained in the
  budget is optimization of the task or memorization of the pool.

Also reported: ``sgd_steps_to_adam``, the first evaluated step at which SGD's seed-mean pool
loss is ``<= L̄_Adam`` (``None``: not within the budget), and ``adam_steps_to_sgd`` the converse.

A tuned rate at the edge of its grid is flagged (``at_edge``): the grid may be too narrow.
JS0 (mean JS distance between blockwise spectral densities at initialization,
:func:`nets.js0`) is computed on the task's spectrum batches with the model seed 0.

**Devices**: every function here takes ``device`` (``"auto"``, ``"cpu"``, ``"cuda:1"``, a
``torch.device``; checked by :func:`nets.engine.distributed.local_device`): models, pools and
spectrum batches are moved there (tasks build on the CPU, from CPU generators, so a seed gives
the same initialization everywhere). The cache keys of CPU results record the torch thread
count (it changes float reductions); results computed on a GPU are keyed by the device type
and GPU name instead, so CPU and GPU results never mix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from labkit.cache import cached
from nets.engine.adapters import to_device
from nets.engine.blocks import resolve_blocks
from nets.engine.density import CHECK_RECIPES, RECIPES, DensityRecipe
from nets.engine.distributed import Communicator, local_device
from nets.engine.js import js0_bootstrap, numerically_zero_blocks
from nets.engine.results import fingerprint
from nets.engine.roles import BLOCK_SETS, block_set
from nets.engine.spectrum import blockwise_spectrum
from nets.studies.tasks import Task
from nets.studies.training import TrainConfig, TrainResult, train

__all__ = ["PROFILES", "PROTOCOLS", "SPECTRUM_MODULES", "GapProfile", "GapReport", "GapResult",
           "LrScore", "TunedOptimizer", "device_settings", "gap_metric", "measure_gap",
           "relative_gap", "task_js0", "train_cached", "tune"]

#: How a profile spends its seeds (see the module docstring).
PROTOCOLS = ("grid", "first-seed")


@dataclass(frozen=True)
class GapProfile:
    """A budget: steps, learning-rate grids, seeds, batch sizes, pool size, JS0 settings.

    ``protocol`` (:data:`PROTOCOLS`) says which seeds run at which rates (``neighbours``: the
    grid neighbours on each side of the first seed's choice that every seed runs, for
    ``"first-seed"``); ``heldout_size`` held-out samples are evaluated with the pool (0: none).
    """

    name: str
    steps: int
    sgd_lrs: tuple[float, ...]
    adam_lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    pool_size: int
    eval_every: int
    js_steps: int
    js_probes: int
    protocol: str = "grid"
    heldout_size: int = 0
    neighbours: int = 1

    def __post_init__(self) -> None:
        if not (self.sgd_lrs and self.adam_lrs and self.seeds and self.batch_sizes):
            raise ValueError("a profile needs learning rates, seeds and batch sizes")
        if max(self.batch_sizes) > self.pool_size:
            raise ValueError("a batch size exceeds the pool size")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if isinstance(self.heldout_size, bool) or not isinstance(self.heldout_size, int) \
                or self.heldout_size < 0:
            raise ValueError(f"heldout_size must be a non-negative integer (0: no held-out "
                             f"pool), got {self.heldout_size!r}")
        if isinstance(self.neighbours, bool) or not isinstance(self.neighbours, int) \
                or self.neighbours < 0:
            raise ValueError(f"neighbours must be a non-negative integer, got "
                             f"{self.neighbours!r}")
        for label in ("sgd_lrs", "adam_lrs"):
            lrs = getattr(self, label)
            if list(lrs) != sorted(set(lrs)):
                raise ValueError(f"{label} must be strictly increasing (grid neighbours are "
                                 f"adjacent entries), got {lrs}")

    def settings(self) -> dict:
        """The budget without its name (what a cache key or a report records)."""
        d = asdict(self)
        d.pop("name")
        return d


def _grid(lo: float, hi: float, per_decade: int) -> tuple[float, ...]:
    n = round((math.log10(hi) - math.log10(lo)) * per_decade) + 1
    return tuple(float(f"{v:.3g}") for v in np.logspace(math.log10(lo), math.log10(hi), n))


#: ``quick``: tests and smoke runs (seconds per model). ``default``: Table 1 (minutes per
#: model on 2 cores; the report states the profile it used). ``lite``: ``default`` with one
#: seed (its runs are a subset of ``default``'s, shared through the cache), used for the
#: secondary studies. ``full``: a longer budget.
PROFILES: dict[str, GapProfile] = {
    "quick": GapProfile("quick", steps=60, sgd_lrs=(0.01, 0.1, 1.0), adam_lrs=(1e-3, 1e-2),
                        seeds=(0,), batch_sizes=(8, 64), pool_size=256, eval_every=20,
                        js_steps=8, js_probes=2),
    "default": GapProfile("default", steps=300, sgd_lrs=_grid(1e-3, 1.0, 1),
                          adam_lrs=_grid(1e-4, 1e-1, 1), seeds=(0, 1), batch_sizes=(8, 64),
                          pool_size=2048, eval_every=25, js_steps=16, js_probes=3),
    "lite": GapProfile("lite", steps=300, sgd_lrs=_grid(1e-3, 1.0, 1),
                       adam_lrs=_grid(1e-4, 1e-1, 1), seeds=(0,), batch_sizes=(8, 64),
                       pool_size=2048, eval_every=25, js_steps=16, js_probes=3),
    "full": GapProfile("full", steps=2000, sgd_lrs=_grid(1e-3, 1.0, 2),
                       adam_lrs=_grid(1e-5, 1e-1, 2), seeds=(0, 1, 2),
                       batch_sizes=(8, 32, 128), pool_size=2048, eval_every=50, js_steps=30,
                       js_probes=8),
}


@dataclass(frozen=True)
class LrScore:
    """One learning rate of a grid: its score and its diverged seeds.

    Attributes:
        lr: Learning rate.
        mean_final_loss: Mean final pool loss over the seeds that ran (``inf`` if any
            diverged).
        final_losses: Per seed (``inf`` where diverged).
        diverged_steps: Per seed, the step of divergence or ``None``.
        seeds: The seeds that ran at this rate (empty: not recorded, every seed of the grid).
        initial_losses: Per seed, the pool loss at initialization.
        heldout_initial: Per seed, the held-out loss at initialization (empty: no held-out).
        heldout_final: Per seed, the held-out loss after the budget (``inf`` where diverged).
    """

    lr: float
    mean_final_loss: float
    final_losses: tuple[float, ...]
    diverged_steps: tuple[int | None, ...]
    seeds: tuple[int, ...] = ()
    initial_losses: tuple[float, ...] = ()
    heldout_initial: tuple[float, ...] = ()
    heldout_final: tuple[float, ...] = ()

    @property
    def diverged(self) -> bool:
        """Some seed diverged at this learning rate."""
        return any(s is not None for s in self.diverged_steps)


@dataclass(frozen=True)
class TunedOptimizer:
    """An optimizer tuned on a learning-rate grid.

    Attributes:
        optimizer: ``"sgd"`` or ``"adam"``.
        lr: Tuned learning rate (``nan`` if every rate diverged).
        final_loss: ``L̄``, its mean final pool loss (``inf`` if every rate diverged).
        grid: Every rate's :class:`LrScore`, in grid order.
        eval_steps: Evaluation steps of the tuned runs.
        curve: Seed-mean pool loss of the tuned runs at ``eval_steps``.
        at_edge: The tuned rate is the smallest or largest of the grid.
        heldout_curve: Seed-mean held-out loss of the tuned runs at ``eval_steps`` (empty
            without a held-out pool).
    """

    optimizer: str
    lr: float
    final_loss: float
    grid: tuple[LrScore, ...]
    eval_steps: np.ndarray = field(repr=False)
    curve: np.ndarray = field(repr=False)
    at_edge: bool
    heldout_curve: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def tuned_score(self) -> LrScore | None:
        """The :class:`LrScore` of the tuned rate (``None`` if every rate diverged)."""
        return next((g for g in self.grid if g.lr == self.lr), None)

    @property
    def all_diverged(self) -> bool:
        """Every learning rate of the grid diverged (no finite tuned loss)."""
        return not math.isfinite(self.final_loss)

    def to_dict(self) -> dict:
        """The tuned rate, its curve and every rate's score as plain values."""
        return {"optimizer": self.optimizer, "lr": self.lr, "final_loss": self.final_loss,
                "at_edge": self.at_edge, "eval_steps": self.eval_steps.tolist(),
                "curve": self.curve.tolist(), "heldout_curve": self.heldout_curve.tolist(),
                "grid": [{"lr": g.lr, "mean_final_loss": g.mean_final_loss,
                          "final_losses": list(g.final_losses),
                          "diverged_steps": list(g.diverged_steps), "seeds": list(g.seeds),
                          "initial_losses": list(g.initial_losses),
                          "heldout_initial": list(g.heldout_initial),
                          "heldout_final": list(g.heldout_final)} for g in self.grid]}


@dataclass(frozen=True)
class GapResult:
    """SGD vs Adam at one batch size.

    Attributes:
        batch_size: Minibatch size.
        steps: Budget in steps.
        sgd: Tuned SGD with momentum.
        adam: Tuned Adam.
        gap: ``ln(L̄_SGD / L̄_Adam)`` (``inf`` if SGD diverged at every rate, ``nan`` if Adam
            did).
        sgd_steps_to_adam: First evaluated step where SGD's curve reaches ``L̄_Adam``.
        adam_steps_to_sgd: First evaluated step where Adam's curve reaches ``L̄_SGD``.
    """

    batch_size: int
    steps: int
    sgd: TunedOptimizer
    adam: TunedOptimizer
    gap: float
    sgd_steps_to_adam: int | None
    adam_steps_to_sgd: int | None

    def seed_relative_gaps(self, data: str = "train") -> np.ndarray:
        """Per seed, :func:`relative_gap` of the tuned runs (seeds paired).

        Args:
            data: ``"train"`` (the pool) or ``"heldout"``.

        Returns:
            One value per seed (empty if either optimizer diverged at every rate, the seeds
            differ, or ``data`` is ``"heldout"`` and there is no held-out pool).
        """
        if data not in ("train", "heldout"):
            raise ValueError(f"data must be 'train' or 'heldout', got {data!r}")
        s, a = self.sgd.tuned_score, self.adam.tuned_score
        if s is None or a is None or len(s.final_losses) != len(a.final_losses):
            return np.zeros(0)
        if data == "heldout":
            if not (s.heldout_final and a.heldout_final):
                return np.zeros(0)
            return np.array([relative_gap(x, y, z) for x, y, z in
                             zip(s.heldout_final, a.heldout_final, s.heldout_initial,
                                 strict=True)])
        init = s.initial_losses or (float(self.sgd.curve[0]),) * len(s.final_losses)
        return np.array([relative_gap(x, y, z) for x, y, z in
                         zip(s.final_losses, a.final_losses, init, strict=True)])

    @property
    def rel_gap(self) -> float:
        """Seed mean of :meth:`seed_relative_gaps` on the training pool (``nan`` if none)."""
        v = self.seed_relative_gaps("train")
        return float(v.mean()) if v.size else math.nan

    @property
    def heldout_rel_gap(self) -> float:
        """Seed mean of :meth:`seed_relative_gaps` on the held-out pool (``nan`` if none)."""
        v = self.seed_relative_gaps("heldout")
        return float(v.mean()) if v.size else math.nan

    def to_dict(self) -> dict:
        """The gaps, the step counts and both tuned optimizers as plain values."""
        return {"batch_size": self.batch_size, "steps": self.steps, "gap": self.gap,
                "rel_gap": self.rel_gap, "heldout_rel_gap": self.heldout_rel_gap,
                "sgd_steps_to_adam": self.sgd_steps_to_adam,
                "adam_steps_to_sgd": self.adam_steps_to_sgd,
                "sgd": self.sgd.to_dict(), "adam": self.adam.to_dict()}


@dataclass(frozen=True)
class GapReport:
    """JS0 and the gap at each batch size for one task.

    Attributes:
        task: Task name.
        profile: Profile name.
        js0: JS0 at initialization (model seed 0).
        js0_low: Lower end of its interval for the probe noise (`nets.js0_bootstrap`).
        js0_high: Upper end of that interval.
        results: One :class:`GapResult` per batch size.
        js0_table: JS0 under every recipe and block set (rows of :func:`task_js0`'s
            ``"table"``; empty when JS0 was not computed).
    """

    task: str
    profile: str
    js0: float
    js0_low: float
    js0_high: float
    results: tuple[GapResult, ...]
    js0_table: tuple[dict, ...] = ()

    def to_dict(self) -> dict:
        """JS0, its interval, the gaps and tuned rates per batch size, and every result."""
        return {"task": self.task, "profile": self.profile, "js0": self.js0,
                "js0_interval95": [self.js0_low, self.js0_high],
                "js0_table": list(self.js0_table),
                "gap": {str(r.batch_size): r.gap for r in self.results},
                "rel_gap": {str(r.batch_size): r.rel_gap for r in self.results},
                "heldout_rel_gap": {str(r.batch_size): r.heldout_rel_gap for r in self.results},
                "tuned": {str(r.batch_size): {o.optimizer: {"lr": o.lr, "final_loss": o.final_loss}
                                              for o in (r.sgd, r.adam)} for r in self.results},
                "results": [r.to_dict() for r in self.results]}


def gap_metric(sgd_loss: float, adam_loss: float) -> float:
    """``ln(L_SGD / L_Adam)``; ``inf`` if SGD has no finite loss, ``nan`` if Adam has none.

    Args:
        sgd_loss: ``L̄_SGD``, SGD's tuned final loss.
        adam_loss: ``L̄_Adam``, Adam's tuned final loss.

    Raises:
        ValueError: a non-positive loss (the log ratio needs positive losses).
    """
    if not math.isfinite(adam_loss):
        return math.nan
    if not math.isfinite(sgd_loss):
        return math.inf
    if sgd_loss <= 0 or adam_loss <= 0:
        raise ValueError(f"the gap needs positive losses, got {sgd_loss} and {adam_loss}")
    return math.log(sgd_loss / adam_loss)


def relative_gap(sgd_loss: float, adam_loss: float, initial_loss: float) -> float:
    r"""Adam's relative loss reduction minus SGD's from a shared initial loss.

    .. math:: Δ = \frac{L_0 − L_{Adam}}{L_0} − \frac{L_0 − L_{SGD}}{L_0}
              = \frac{L_{SGD} − L_{Adam}}{L_0}

    Bounded: ``Δ ∈ [−1, 1]`` when both losses lie in ``[0, L₀]``, and comparable across models
    (a fraction of the initial loss), unlike ``ln(L_SGD / L_Adam)``, which grows without bound
    as Adam's loss tends to 0. Positive: SGD lags Adam.

    Args:
        sgd_loss: SGD's final loss (``inf`` where it diverged).
        adam_loss: Adam's final loss (``inf`` where it diverged).
        initial_loss: ``L₀``, the loss at the shared initialization (positive, finite).

    Returns:
        ``Δ``; ``nan`` if either loss is not finite (a diverged run has no reduction).

    Raises:
        ValueError: ``initial_loss`` is not positive and finite.
    """
    if not (math.isfinite(initial_loss) and initial_loss > 0):
        raise ValueError(f"initial_loss must be positive and finite, got {initial_loss}")
    if not (math.isfinite(sgd_loss) and math.isfinite(adam_loss)):
        return math.nan
    return (sgd_loss - adam_loss) / initial_loss


def _first_reach(steps: np.ndarray, curve: np.ndarray, level: float) -> int | None:
    hit = np.nonzero(curve <= level)[0]
    return int(steps[hit[0]]) if hit.size else None


#: The spectrum engine's modules: part of the cache key of JS0 results.
SPECTRUM_MODULES = ("nets.engine.spectrum", "nets.engine.hvp", "nets.engine.lanczos",
                    "nets.engine.slq", "nets.engine.density", "nets.engine.js",
                    "nets.engine.blocks", "nets.engine.adapters")


def _check_task(task: object) -> Task:
    if not isinstance(task, Task):
        raise TypeError(f"expected a nets.studies.tasks.Task, got {type(task).__name__}: build "
                        "one with zoo_task, scaled_mlp_task, layernorm_task or finetune_task")
    return task


def device_settings(device: str | torch.device = "cpu") -> dict:
    """What a result computed on ``device`` is keyed by, besides its settings.

    On the CPU the torch thread count (it changes the order of float reductions: measured
    2e-7 relative after 80 GPT steps, which a tuned-rate choice between close losses can
    amplify); on a GPU the device type and the GPU's name (kernels differ between GPUs).

    Args:
        device: The device (anything :func:`nets.engine.distributed.local_device` accepts).

    Returns:
        ``{"torch_threads": n}`` on the CPU, ``{"device": "cuda", "gpu": name}`` on a GPU.
    """
    dev = local_device(device)
    if dev.type == "cpu":
        return {"torch_threads": torch.get_num_threads()}
    return {"device": dev.type, "gpu": torch.cuda.get_device_name(dev)}


def train_cached(task: Task, config: TrainConfig, *, pool_size: int,
                 cache_dir: str | os.PathLike | None = None,
                 callback: Callable[[int, float], None] | None = None,
                 device: str | torch.device = "cpu", heldout_size: int = 0) -> TrainResult:
    """:func:`nets.studies.training.train` on ``task``, cached on disk.

    The entry is keyed by the settings and the code, and carries the
    :func:`nets.engine.results.fingerprint` of the model as initialized at ``config.seed`` and
    of the training pool: an entry of another model or data is reported by name (a
    :class:`labkit.cache.CacheWarning`) and recomputed.

    Args:
        task: The task; its :meth:`~nets.studies.tasks.Task.key` and the source of its
            modules key the cache (never its label).
        config: Optimizer, learning rate, budget, batch size and seeds.
        pool_size: Training pool size.
        cache_dir: Cache folder (:func:`labkit.cache.cache_dir`).
        callback: Passed to :func:`nets.studies.training.train` (called only when computing).
        device: Where to train (the pool and the model are moved there; see
            :func:`device_settings` for how the device keys the cache).
        heldout_size: Held-out samples (:meth:`nets.studies.tasks.Task.heldout_pool`) whose
            loss is evaluated with the pool's (0, or a task without held-out data: none).

    Returns:
        The run's :class:`nets.studies.training.TrainResult`.
    """
    task = _check_task(task)
    dev = local_device(device)
    if isinstance(heldout_size, bool) or not isinstance(heldout_size, int) or heldout_size < 0:
        raise ValueError(f"heldout_size must be a non-negative integer, got {heldout_size!r}")
    heldout = task.heldout_pool(heldout_size) if heldout_size else None
    settings = {"task": task.key(), "pool_size": pool_size, "config": config.to_dict(),
                **device_settings(dev), "heldout_size": 0 if heldout is None else heldout_size}
    pool = task.pool(pool_size)
    # the entry also carries the fingerprint of what it was computed from (the model as
    # initialized at the run's seed, the training pool and the held-out pool): checked on
    # reading, so an entry whose model or data changed behind an unchanged key is reported
    # and recomputed
    data = [(pool.inputs, pool.targets)]
    if heldout is not None:
        data.append((heldout.inputs, heldout.targets))
    built = task.build(config.seed)  # built once: fingerprinted, then trained on a miss
    inputs = fingerprint(built[0], data)

    def compute() -> dict:
        return train(lambda _seed: built, pool.to(dev), config, callback=callback,
                     heldout=None if heldout is None else heldout.to(dev)).to_dict()

    return TrainResult.from_dict(cached("train", settings, compute, directory=cache_dir,
                                        modules=task.modules, fingerprint=inputs))


def _check_lrs(lrs: Sequence[float]) -> tuple[float, ...]:
    lrs = tuple(float(v) for v in lrs)
    if not lrs or any(not (math.isfinite(v) and v > 0) for v in lrs):
        raise ValueError(f"learning rates must be positive and finite, got {lrs}")
    return lrs


def _select(optimizer: str, lrs: tuple[float, ...], seeds: Sequence[int],
            runs: dict[tuple[float, int], TrainResult]) -> TunedOptimizer:
    """Pick the learning rate with the lowest seed-mean final loss among the rates that ran
    every seed (diverged rates excluded); ``runs`` may lack seeds at some rates."""
    scores, eligible = [], []
    for lr in lrs:
        ran = [s for s in seeds if (lr, s) in runs]
        rs = [runs[lr, s] for s in ran]
        finals = [r.final_loss for r in rs]
        divs = [r.diverged_step for r in rs]
        mean = (math.inf if not rs or any(d is not None for d in divs)
                else float(np.mean(finals)))
        held = all(r.heldout_losses.size for r in rs) and bool(rs)
        scores.append(LrScore(
            lr, mean, tuple(finals), tuple(divs), tuple(int(s) for s in ran),
            tuple(r.initial_loss for r in rs),
            tuple(float(r.heldout_losses[0]) for r in rs) if held else (),
            tuple(math.inf if r.diverged else float(r.heldout_losses[-1]) for r in rs)
            if held else ()))
        eligible.append(len(ran) == len(seeds) and math.isfinite(mean))
    means = np.array([sc.mean_final_loss if ok else math.inf
                      for sc, ok in zip(scores, eligible, strict=True)])
    if not np.isfinite(means).any():
        return TunedOptimizer(optimizer, math.nan, math.inf, tuple(scores),
                              np.zeros(0, dtype=np.int64), np.zeros(0), False)
    best = int(np.argmin(means))
    lr = lrs[best]
    tuned = [runs[lr, s] for s in seeds]
    steps_arr = tuned[0].eval_steps
    curve = np.mean([r.eval_losses for r in tuned], axis=0)
    held_curve = (np.mean([r.heldout_losses for r in tuned], axis=0)
                  if all(r.heldout_losses.size for r in tuned) else np.zeros(0))
    return TunedOptimizer(optimizer, lr, float(means[best]), tuple(scores), steps_arr, curve,
                          len(lrs) > 1 and best in (0, len(lrs) - 1), held_curve)


def _needed(lrs: tuple[float, ...], seeds: Sequence[int],
            runs: dict[tuple[float, int], TrainResult], neighbours: int = 1
            ) -> list[tuple[float, int]]:
    """The ``(rate, seed)`` runs the ``"first-seed"`` protocol still needs (see the module
    docstring): every seed at the best rate and at its ``neighbours`` neighbours on each side,
    where the first seed did not diverge; empty once that neighbourhood of the best rate over
    every seed is complete."""
    first = seeds[0]

    def ok(i: int) -> bool:  # inside the grid and the first seed did not diverge there
        return 0 <= i < len(lrs) and not runs[lrs[i], first].diverged

    def complete(i: int) -> bool:
        return all((lrs[i], s) in runs for s in seeds)

    tuned = _select("", lrs, seeds, runs)
    if not tuned.all_diverged:
        centre = lrs.index(tuned.lr)
    else:  # no eligible rate yet: the first seed's best among the rates not ruled out
        open_ = [i for i in range(len(lrs)) if ok(i) and not complete(i)]
        if not open_:
            return []
        centre = min(open_, key=lambda i: runs[lrs[i], first].final_loss)
    want = [i for i in range(centre - neighbours, centre + neighbours + 1)
            if ok(i) and not complete(i)]
    return [(lrs[i], s) for i in want for s in seeds if (lrs[i], s) not in runs]


def _train_noted(task: Task, config: TrainConfig, *, pool_size: int, cache_dir,
                 progress: Callable[[str], None] | None,
                 device: torch.device, heldout_size: int = 0) -> TrainResult:
    r = train_cached(task, config, pool_size=pool_size, cache_dir=cache_dir, device=device,
                     heldout_size=heldout_size)
    if progress is not None:
        state = f"diverged@{r.diverged_step}" if r.diverged else f"{r.final_loss:.3g}"
        progress(f"{task.label} B={config.batch_size} {config.optimizer} lr={config.lr:g} "
                 f"s{config.seed}: {state}")
    return r


def tune(task: Task, optimizer: str, lrs: Sequence[float], *, batch_size: int, steps: int,
         seeds: Sequence[int], pool_size: int, eval_every: int, data_seed: int = 0,
         cache_dir: str | os.PathLike | None = None,
         progress: Callable[[str], None] | None = None,
         comm: Communicator | None = None,
         device: str | torch.device = "cpu", heldout_size: int = 0) -> TunedOptimizer:
    """Tune ``optimizer``'s learning rate on ``lrs`` (see the module docstring).

    Diverged runs are kept in the grid with their step and excluded from the choice. With a
    distributed ``comm`` the runs are shared out among the ranks and gathered on every rank.

    Args:
        task: The task.
        optimizer: ``"sgd"`` or ``"adam"``.
        lrs: The learning-rate grid (positive, finite).
        batch_size: Minibatch size.
        steps: Budget in steps.
        seeds: Model seeds (one run each per rate).
        pool_size: Training pool size.
        eval_every: Steps between pool-loss evaluations.
        data_seed: Seed of the data order.
        cache_dir: Cache folder.
        progress: Called with a note after every run.
        comm: Communicator to share the runs out (default: one process).
        device: Where to train (:func:`train_cached`).
        heldout_size: Held-out samples evaluated with the pool (0: none).
    """
    lrs = _check_lrs(lrs)
    dev = local_device(device)
    configs = [TrainConfig(optimizer, lr, steps, batch_size, seed=int(seed),
                           data_seed=data_seed, eval_every=eval_every)
               for lr in lrs for seed in seeds]
    results = (comm or Communicator()).map(
        lambda cfg: _train_noted(task, cfg, pool_size=pool_size, cache_dir=cache_dir,
                                 progress=progress, device=dev,
                                 heldout_size=heldout_size), configs)
    return _select(optimizer, lrs, seeds,
                   {(c.lr, c.seed): r for c, r in zip(configs, results, strict=True)})


def _js0_row(spectra, recipe: DensityRecipe, names: Sequence[str], *, n_boot: int,
             rng: np.random.Generator) -> dict:
    """JS0 of the blocks ``names`` under ``recipe`` with its bootstrap interval (or the reason
    it does not apply, e.g. λ₁₀ of a block of rank < 10)."""
    zero = numerically_zero_blocks(spectra, recipe)
    sub = {k: spectra[k] for k in names}
    row = {"n_blocks": len(sub), "zero_blocks": [k for k in zero if k in sub]}
    try:
        est = js0_bootstrap(sub, recipe, n_boot=n_boot, rng=rng)
    except ValueError as e:
        return {**row, "js0": None, "low": None, "high": None, "error": str(e)}
    return {**row, "js0": est.value, "low": est.low, "high": est.high}


def task_js0(task: Task, *, lanczos_steps: int, probes: int, seed: int = 0,
             cache_dir: str | os.PathLike | None = None,
             recipe: DensityRecipe | None = None,
             device: str | torch.device = "cpu") -> dict:
    """JS0 at initialization (model seed 0) with a bootstrap interval over probes; cached.

    Besides the headline ``recipe`` (default: the log recipe), JS0 is computed from the same
    spectra (no new HVPs) under every recipe of :data:`nets.engine.density.RECIPES` and
    :data:`nets.engine.density.CHECK_RECIPES` (the log recipe at a zero threshold float32
    products resolve) and on both block sets of :data:`nets.engine.roles.BLOCK_SETS` (every
    parameter tensor, or the weight matrices only), each with its own bootstrap interval;
    numerically zero blocks are left out of every JS0 and named.

    Args:
        task: The task (its model at seed 0 and its spectrum batches).
        lanczos_steps: Lanczos steps per probe.
        probes: Number of probe vectors.
        seed: Seed of the probes and the bootstrap.
        cache_dir: Cache folder (:func:`labkit.cache.cache_dir`).
        recipe: The headline density recipe.
        device: Where the Hessian-vector products run (the model and the batches are moved
            there); a GPU keys the cache apart (:func:`device_settings`).

    Returns:
        ``{"js0", "low", "high", "blocks", "recipe", "zero_blocks", "table"}``; ``table`` holds
        one ``{"recipe", "block_set", "js0", "low", "high", "n_blocks", "zero_blocks"}`` row per
        recipe and block set (with ``"error"`` and ``None`` where a recipe does not apply).
    """
    recipe = recipe or DensityRecipe()
    task = _check_task(task)
    dev = local_device(device)
    settings = {"task": task.key(), "steps": lanczos_steps, "probes": probes, "seed": seed,
                "recipe": asdict(recipe)}
    if dev.type != "cpu":  # CPU keys stay as they were, so existing CPU results stay valid
        settings.update(device_settings(dev))

    model, loss_fn = task.build(0)
    model = model.to(dev)
    batches = [to_device(b, dev) for b in task.spectrum_batches()]

    def compute() -> dict:
        spectra = blockwise_spectrum(model, loss_fn, batches,
                                     lanczos_steps=lanczos_steps, probes=probes, seed=seed)
        n_boot = 50 if probes > 1 else 2
        tensors = resolve_blocks(model, None)
        sets = {which: block_set(model, tensors, which) for which in BLOCK_SETS}
        table = []
        recipes = {**RECIPES, **CHECK_RECIPES}
        for name, rec in recipes.items():
            for which, names in sets.items():
                rng = np.random.default_rng([seed, 777])
                table.append({"recipe": name, "block_set": which,
                              **_js0_row(spectra, rec, names, n_boot=n_boot, rng=rng)})
        # the headline is a row of the table where its recipe is one of the table's (the same
        # JS0 and bootstrap draws: not computed twice)
        head = next((row for row in table if row["block_set"] == "all"
                     and recipes[row["recipe"]] == recipe), None)
        if head is None:
            head = _js0_row(spectra, recipe, sets["all"], n_boot=n_boot,
                            rng=np.random.default_rng([seed, 777]))
        if "error" in head:
            raise ValueError(f"{task.label}: JS0 under {recipe.label}: {head['error']}")
        return {"js0": head["js0"], "low": head["low"], "high": head["high"],
                "blocks": len(spectra), "recipe": recipe.label,
                "zero_blocks": head["zero_blocks"], "table": table}

    return cached("js0", settings, compute, directory=cache_dir,
                  modules=task.modules + SPECTRUM_MODULES,
                  fingerprint=fingerprint(model, batches))


def measure_gap(task: Task, profile: str | GapProfile = "quick", *,
                batch_sizes: Sequence[int] | None = None,
                cache_dir: str | os.PathLike | None = None,
                with_js0: bool = True,
                progress: Callable[[str], None] | None = None,
                comm: Communicator | None = None,
                device: str | torch.device = "cpu") -> GapReport:
    """JS0 and the tuned SGD–Adam gap of a task at each of the profile's batch sizes.

    Args:
        task: A :class:`nets.studies.tasks.Task`.
        profile: A :class:`GapProfile` or a key of :data:`PROFILES`.
        batch_sizes: Override the profile's batch sizes.
        cache_dir: Cache folder (:func:`labkit.cache.cache_dir`).
        with_js0: Compute JS0 (else it is reported as ``nan``).
        progress: Called with a note after every training run (on this rank).
        comm: A :class:`nets.engine.distributed.DistributedCommunicator` to share the grid (JS0 and
            every training run) out among the ranks; every rank returns the whole report.
        device: Where to train and compute JS0 (``"auto"``, ``"cpu"``, ``"cuda:1"``, ...; see
            the module docstring).
    """
    task = _check_task(task)
    dev = local_device(device)
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
        profile = PROFILES[profile]
    sizes = tuple(int(b) for b in (batch_sizes or profile.batch_sizes))
    if any(b < 1 or b > profile.pool_size for b in sizes):
        raise ValueError(f"batch sizes must lie in [1, {profile.pool_size}], got {sizes}")
    grids = {"sgd": _check_lrs(profile.sgd_lrs), "adam": _check_lrs(profile.adam_lrs)}
    seeds = tuple(int(x) for x in profile.seeds)
    first_seeds = seeds if profile.protocol == "grid" else seeds[:1]

    def config(opt: str, b: int, lr: float, seed: int) -> TrainConfig:
        return TrainConfig(opt, lr, profile.steps, b, seed=seed, eval_every=profile.eval_every)

    jobs: list[TrainConfig | None] = [None] if with_js0 else []  # None: the JS0 job
    jobs += [config(opt, b, lr, seed) for b in sizes for opt, lrs in grids.items()
             for lr in lrs for seed in first_seeds]

    def run(job: TrainConfig | None):
        if job is not None:
            return _train_noted(task, job, pool_size=profile.pool_size, cache_dir=cache_dir,
                                progress=progress, device=dev,
                                heldout_size=profile.heldout_size)
        js = task_js0(task, lanczos_steps=profile.js_steps, probes=profile.js_probes,
                      cache_dir=cache_dir, device=dev)
        if progress is not None:
            progress(f"{task.label} JS0 = {js['js0']:.3f}")
        return js

    the_comm = comm or Communicator()
    done = dict(zip(map(_job_key, jobs), the_comm.map(run, jobs), strict=True))

    def runs_of(opt: str, b: int) -> dict[tuple[float, int], TrainResult]:
        return {(lr, s): done[opt, b, lr, s] for lr in grids[opt] for s in seeds
                if (opt, b, lr, s) in done}

    while profile.protocol == "first-seed":  # each round: every seed around the best rates
        more = [config(opt, b, lr, s) for b in sizes for opt in grids
                for lr, s in _needed(grids[opt], seeds, runs_of(opt, b), profile.neighbours)]
        if not more:
            break
        done.update(zip(map(_job_key, more), the_comm.map(run, more), strict=True))
    results = []
    for b in sizes:
        sgd, adam = (_select(opt, grids[opt], seeds, runs_of(opt, b)) for opt in ("sgd", "adam"))
        g = gap_metric(sgd.final_loss, adam.final_loss)
        s2a = (None if sgd.all_diverged or adam.all_diverged
               else _first_reach(sgd.eval_steps, sgd.curve, adam.final_loss))
        a2s = (None if sgd.all_diverged or adam.all_diverged
               else _first_reach(adam.eval_steps, adam.curve, sgd.final_loss))
        results.append(GapResult(b, profile.steps, sgd, adam, g, s2a, a2s))
    js = done.get(None, {"js0": math.nan, "low": math.nan, "high": math.nan})
    return GapReport(task.label, profile.name, js["js0"], js["low"], js["high"], tuple(results),
                     tuple(js.get("table", ())))


def _job_key(job: TrainConfig | None):
    return None if job is None else (job.optimizer, job.batch_size, job.lr, job.seed)
