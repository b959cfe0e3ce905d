"""One method on one cell of a spectra benchmark, timed: the row every spectra benchmark's
table is made of.

A cell is a dict: ``model`` (a :mod:`problems` name), ``kind`` (``full`` or ``blocks``),
``probes``, ``steps``, ``threads``, and optionally ``device``, ``density_bins`` (the authors'
density grid), ``block_names`` (the blocks of a blockwise cell), ``max_memory`` (nets'
budget), ``measure_tangents`` (how nets' budget counts a stacked tangent, blockwise cells)
and ``count_live`` (a nets cell: one more, untimed run counting its live tensors);
``method`` names what runs on it: ``nets`` (``nets+compile``), ``eigenthings``
(hessian-eigenthings 1.0.0a5), ``curvlinops`` (3.0.1) or ``authors`` (:mod:`authors`).

:func:`run_cell` measures it in this process; :func:`measure` in a fresh one (``python
benchmarks/runner.py --cell CELL`` prints the row), so each method's peak memory is its own;
:func:`pool_rounds` joins a method's rows from several fresh processes. A row holds the cell, the
wall seconds of one run (spectrum + density; a short run is repeated, the median kept and every run
listed, see :data:`REPEAT_BELOW`), the products counted, the time of one warm gradient (``grad_s``,
the median of ``grad_runs``, :func:`meters.gradient_runs`), the peak memory and its rise, the load
average, and each method's largest Ritz values; a nets row also has its mode, graph strategy, time
split (``product_s``, ``graph_s``, ``calibration_s``) and what ``auto`` timed on the first batch in
each mode it tried (``calibration_modes``, seconds).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from a checkout: the repository's nets
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside it

import meters  # noqa: E402
import problems  # noqa: E402
from authors import authors_blockwise  # noqa: E402
from verdicts import RUNS_OF  # noqa: E402

import nets  # noqa: E402
from nets.engine.memory import LiveBytes  # noqa: E402

__all__ = ["LIBRARIES", "REPEATS", "REPEAT_BELOW", "Repeated", "each_model", "measure",
           "measure_in", "pool_rounds", "repeat", "round_order", "run_cell", "run_script"]

T = TypeVar("T")

#: Runs shorter than this (seconds) are repeated: their timings are mostly the machine's noise.
REPEAT_BELOW = 3.0
#: Runs of a short method in all (the median is reported, and their interval decides verdicts).
REPEATS = 3
#: The packages a peer method runs on, imported before its runs are timed, as ``nets`` and
#: :mod:`authors` are when this module loads: an import's time and memory are not a method's
#: (curvlinops' import loads ``linear_operator``, ``einops`` and more).
LIBRARIES = {"eigenthings": ("hessian_eigenthings",), "curvlinops": ("curvlinops",)}


def pool_rounds(rows: list[dict]) -> dict:
    """One row from a method's rounds on a cell (``--rounds``: each round a fresh process).

    The runs of every round are pooled: each timing of :data:`RUNS_OF` becomes the median of
    all its runs and keeps them all (so a target's interval spans every round; ``grad_s``, the
    time of one gradient, pools its ``grad_runs`` likewise), the peak memory columns and
    ``load`` the largest of the rounds'; ``loads`` lists every round's load,
    ``peak_extra_rounds`` every round's peak rise (what :func:`verdicts.memory_ratio` judges a
    memory target on), ``run_imports`` joins the rounds' and ``rounds`` counts them. A round
    that failed makes the row that failure.

    Args:
        rows: :func:`run_cell` rows of one method on one cell, one per round.
    """
    failed = [r for r in rows if "error" in r]
    if failed:
        return failed[0]
    row = dict(rows[0])
    for key, runs_key in RUNS_OF.items():
        if all(key in r for r in rows):
            pooled = [t for r in rows for t in (r.get(runs_key) or [r[key]])]
            row[runs_key], row[key] = pooled, float(np.median(pooled))
    for key in ("peak_bytes", "peak_extra_bytes", "peak_all_bytes", "peak_steady_extra_bytes",
                "live_peak_bytes", "load"):
        if all(key in r for r in rows):
            row[key] = max(r[key] for r in rows)
    row["loads"] = [r["load"] for r in rows]
    if all("peak_extra_bytes" in r for r in rows):
        row["peak_extra_rounds"] = [r["peak_extra_bytes"] for r in rows]
    row["run_imports"] = sorted({m for r in rows for m in r.get("run_imports", ())})
    row["rounds"] = len(rows)
    return row


class Repeated(NamedTuple):
    """The runs of one timed callable (:func:`repeat`).

    Attributes:
        runs: Each run's wall seconds (GPU work included).
        extras: What each run returned.
        before: Memory in use before the first run (bytes).
        first_peak: The first run's peak (a nets run on a GPU: the larger of its first step's
            and the reading after it).
        steady: The peak read after the first run (on a GPU, nets' peak after its first step).
        every_peak: The peak over every run.
    """

    runs: list[float]
    extras: list[dict]
    before: int
    first_peak: int
    steady: int
    every_peak: int


def repeat(run: Callable[[], dict], device: torch.device) -> Repeated:
    """Time ``run()`` on ``device`` as every row is timed: once, and again while the first run
    took under :data:`REPEAT_BELOW` seconds, :data:`REPEATS` runs in all; the memory meters of
    :func:`meters.memory_meters` read around them.

    Args:
        run: One run; returns what it reports besides its time (a nets run on a GPU may give
            ``first_step_peak_bytes``, its peak at its first step, read before it reset the
            counter).
        device: Where the run's work is (a GPU's queue is waited for before a run is timed).

    Returns:
        The runs, their reports and the memory readings.
    """
    now, peak = meters.memory_meters(device)  # a GPU's peak counts from here: the runs alone
    before = now()
    runs: list[float] = []
    extras: list[dict] = []
    every_peak = first_peak = steady = 0
    while not runs or (len(runs) < REPEATS and runs[0] < REPEAT_BELOW):
        t0 = time.perf_counter()
        extras.append(run())
        meters.synchronize(device)
        runs.append(time.perf_counter() - t0)
        # nets on a GPU: its first step's peak was read (and the counter reset) by the run
        # itself; the run's peak is the larger, the reading after it its steady peak
        after = peak()
        run_peak = max(after, extras[-1].get("first_step_peak_bytes", 0))
        every_peak = max(every_peak, run_peak)
        if len(runs) == 1:
            first_peak, steady = run_peak, after
    return Repeated(runs, extras, before, first_peak, steady, every_peak)


def round_order(items: Sequence[T], r: int) -> list[T]:
    """``items`` in round ``r``'s order: as given in even rounds, reversed in odd ones.

    Benchmarks that measure several methods (budgets, versions, rules) in rounds of fresh
    processes interleave them this way, so that a slow phase of the machine falls on every
    one of them rather than on whichever comes first.

    Args:
        items: What a round measures, in the order of round 0.
        r: The round (0-based).
    """
    return list(items) if r % 2 == 0 else list(items)[::-1]


def each_model(script: str, models: Sequence[str], args: Callable[[str], list[str]],
               here: Callable[[str], list[dict]], *, in_process: bool,
               failed: Callable[[str, str], dict]) -> list[dict]:
    """The rows of a per-model benchmark: every model measured in its own process (``python
    script *args(model)``, which prints its rows as JSON, :func:`run_script`) or, with
    ``in_process``, here (``here(model)``). A model that fails in its process gives the row
    ``failed(model, error)`` and the others go on.

    Args:
        script: The benchmark script (its ``__file__``).
        models: :mod:`problems` names.
        args: The script's arguments that measure one model and print its rows.
        here: Measures one model in this process.
        in_process: Measure every model here.
        failed: The row that stands for a model whose process failed.
    """
    rows: list[dict] = []
    for m in models:
        if in_process:
            rows += here(m)
            continue
        try:
            rows += run_script(script, args(m))
        except RuntimeError as e:  # the model failed in its process: the others go on
            rows.append(failed(m, str(e)))
    return rows


def run_cell(cell: dict) -> dict:
    """Run one method on one cell (in this process); its measurements.

    A run shorter than :data:`REPEAT_BELOW` seconds is repeated, :data:`REPEATS` runs in all
    (the first included: a user's one call pays what it pays): ``seconds`` is their median,
    ``runs`` every run's time (the other timings of :data:`RUNS_OF` likewise). The peak memory
    is the first run's, a user's one call: a later run in the same process starts from what
    the allocator kept of the one before, and its peak creeps up (measured: nets' blockwise
    zoo GPT cell 1.4 MiB higher per repeat, hessian-eigenthings' 0.4), which would charge a
    method fast enough to be repeated for the repeats; ``peak_all_bytes`` keeps the peak over
    all runs.

    A cell's ``device`` (default the CPU) is where the model, data and products are; on a GPU
    the memory columns are its allocator's (``torch.cuda.max_memory_allocated``, the rise from
    what was allocated before the first run), not the process's RSS, and a nets row also has
    ``peak_steady_extra_bytes``: the rise after its first Lanczos step, i.e. without the data
    check and ``"auto"``'s calibration (which may run modes it then does not choose). A nets
    cell with ``count_live`` runs once more after the timed runs, untimed, under
    :class:`nets.engine.memory.LiveBytes`: ``live_peak_bytes`` is the most bytes of tensors
    that run held alive at once (the budget's own measure, without what the allocator or the
    libraries hold beside the tensors; the instrument slows the run several times). The
    method's packages (:data:`LIBRARIES`) are imported before the runs, and ``run_imports``
    lists the top-level packages any module of which was first imported during them (what a
    run loads lazily, e.g. a part of torch, is in its time and peak). A
    blockwise cell's
    ``block_names`` (parameter names; default every parameter) restricts every method to those
    blocks.

    Args:
        cell: The cell and its ``method`` (see the module docstring).

    Returns:
        The row: the cell's fields and the measurements.

    Raises:
        ValueError: A ``block_names`` entry that is not a parameter of the model, or an
            unknown method or model.
        ImportError: The method's package (:data:`LIBRARIES`) is not installed.
    """
    load_avg = os.getloadavg()[0]
    for package in LIBRARIES.get(cell["method"], ()):
        importlib.import_module(package)
    torch.set_num_threads(cell["threads"])
    device = torch.device(cell.get("device") or "cpu")
    model, loss_fn, data = problems.load(cell["model"], device)
    names = [n for n, _ in model.named_parameters()]
    dims = {n: p.numel() for n, p in model.named_parameters()}
    if cell["kind"] == "blocks" and cell.get("block_names"):
        missing = sorted(set(cell["block_names"]) - set(names))
        if missing:
            raise ValueError(f"cell blocks {missing} are not parameters of {cell['model']}")
        names = [n for n in names if n in cell["block_names"]]
    steps, probes, kind = cell["steps"], cell["probes"], cell["kind"]
    with sdpa_kernel([SDPBackend.MATH]):
        grad_runs = meters.gradient_runs(model, loss_fn, data)
        # a short run is run again (up to REPEATS times in all): the median and the spread
        # of the runs, not one draw of the machine's noise, go into the row
        loaded = set(sys.modules)
        done = repeat(lambda: _run_once(cell, model, loss_fn, data, names), device)
        run_imports = sorted({m.partition(".")[0] for m in set(sys.modules) - loaded})
        extra = dict(done.extras[-1])
        if cell.get("count_live") and cell["method"].startswith("nets"):
            with LiveBytes() as count:
                _run_once(cell, model, loss_fn, data, names)
            extra["live_peak_bytes"] = count.peak
        if "first_step_peak_bytes" in done.extras[0]:
            extra["peak_steady_extra_bytes"] = max(done.steady - done.before, 0)
        for key, runs_key in RUNS_OF.items():
            if key in extra:
                extra[runs_key] = [e[key] for e in done.extras]
                extra[key] = float(np.median(extra[runs_key]))
    blocks = 1 if kind == "full" else len(names)
    hvps = probes * (steps if kind == "full" else sum(min(steps, dims[n]) for n in names))
    return {**cell, "load": load_avg, "seconds": float(np.median(done.runs)), "hvps": hvps,
            "blocks": blocks, "grad_s": float(np.median(grad_runs)), "grad_runs": grad_runs,
            "runs": done.runs,
            "peak_bytes": done.first_peak,
            "peak_extra_bytes": max(done.first_peak - done.before, 0),
            "peak_all_bytes": done.every_peak,
            "params": sum(dims[n] for n in names) if kind == "blocks" else sum(dims.values()),
            "run_imports": run_imports, **extra}

def _run_once(cell: dict, model: torch.nn.Module, loss_fn, data: list, names: list[str]) -> dict:
    """One timed run of ``cell["method"]`` on the loaded model; what it reports besides its time."""
    steps, probes, method, kind = cell["steps"], cell["probes"], cell["method"], cell["kind"]
    extra: dict = {}
    if method in ("nets", "nets+compile", "nets+full-reorth"):
        info: dict = {}
        budget = cell.get("max_memory")
        first_step: dict = {}
        device = torch.device(cell.get("device") or "cpu")

        def callback(step: int, total: int) -> None:
            # on a GPU: the peak through the first step (the first operator call: the data
            # check, the calibration, the first products), then the run's own from here on
            if device.type == "cuda" and not first_step:
                first_step["peak"] = torch.cuda.max_memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)

        # (bench_ab drives older nets too: reorth= only where a cell asks for another)
        reorth = ({"reorth": cell["reorth"]} if cell.get("reorth", "full") != "full" else {})
        if kind == "full":
            s = nets.full_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                   probes=probes, info=info, max_memory=budget,
                                   compile=method == "nets+compile", callback=callback,
                                   **reorth)
            nets.spectral_density(s.nodes, s.weights, np.linspace(
                s.nodes.min(), s.nodes.max(), 2000), 1e-3 * np.ptp(s.nodes) + 1e-12)
            top = {"full": float(s.nodes.max())}
        else:
            chosen = {n: n for n in names} if cell.get("block_names") else None
            # (bench_ab drives older nets too: measure_tangents only where a cell asks)
            measure = ({"measure_tangents": cell["measure_tangents"]}
                       if "measure_tangents" in cell else {})
            spectra = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                              probes=probes, info=info, max_memory=budget,
                                              blocks=chosen, callback=callback, **measure,
                                              **reorth)
            nets.block_densities(spectra)
            top = {n: float(sp.nodes.max()) for n, sp in spectra.items()}
        extra = {"mode": info["hvp_mode"], "lanczos_s": info["seconds"],
                 "product_s": info["product_seconds"], "graph_s": info["graph_seconds"],
                 # (bench_ab drives older nets too, whose info has no calibration_seconds)
                 **({"calibration_s": info["calibration_seconds"]}
                    if "calibration_seconds" in info else {}),
                 **({"first_step_peak_bytes": first_step["peak"]} if first_step else {}),
                 "graphs": info["graph_strategy"], "groups": info.get("lanczos_groups", 1),
                 **({"reorth": info["reorth"],
                     "reorthogonalized": info["reorthogonalized_steps"]}
                    if "reorth" in info else {}),
                 "budget_bytes": info["max_memory"],
                 **({"tangent_bytes": info["tangent_bytes"],
                     "tangent_estimate": info["tangent_estimate"]}
                    if "tangent_estimate" in info else {}),
                 # what auto timed on the first batch, per mode (empty for a forced mode)
                 "calibration_modes": dict((info.get("calibration") or {}).get("seconds", {})),
                 "top": top}
    elif method == "eigenthings":
        import hessian_eigenthings as he

        lf = he.supervised_loss(loss_fn)
        groups = [None] if kind == "full" else [he.match_names(n) for n in names]
        top = {}
        for i, flt in enumerate(groups):
            op = he.HessianOperator(model, data, lf, param_filter=flt)
            k = min(steps, op.size) if kind == "blocks" else steps
            r = he.spectral_density(op, num_runs=probes, lanczos_steps=k, seed=i)
            top["full" if kind == "full" else names[i]] = float(
                r.raw_eigenvalues.nan_to_num(nan=-float("inf")).max())
        extra = {"top": top}
    elif method == "curvlinops":
        import curvlinops

        class Loss(torch.nn.Module):
            reduction = "mean"

            def forward(self, out, y):
                return loss_fn(out, y)

        params = [p for p in model.parameters()]
        op = curvlinops.HessianLinearOperator(model, Loss(), params, data,
                                              check_deterministic=False)
        curvlinops.lanczos_approximate_spectrum(op, ncv=steps, num_repeats=probes,
                                                boundaries=(-1.0, 1.0))
    elif method == "authors":
        lanczos_s, top = authors_blockwise(model, loss_fn, data, steps, probes, 0,
                                           cell.get("density_bins", 50_000),
                                           blocks=names if cell.get("block_names") else None)
        extra = {"lanczos_s": lanczos_s, "top": top}
    else:
        raise ValueError(method)
    return extra


def measure(run: dict, *, in_process: bool = False) -> dict:
    """:func:`run_cell`'s row for ``run`` (a cell with its ``method``), measured in a fresh
    process (``--cell``: the method's own peak memory) or, with ``in_process``, in this one.

    Args:
        run: The cell and its ``method``.
        in_process: Measure in this process (no start-up; the peak is then the process's).

    Returns:
        The row, or ``{"error": ...}`` with the failure's last line (a peer not installed or
        failing is reported in its row, not raised).
    """
    if in_process:
        try:
            return run_cell(run)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {e}"[:120]}
    return measure_in(__file__, run)


def measure_in(script: str, cell: dict, env: dict | None = None) -> dict:
    """``python script --cell CELL`` in a fresh process: the row it prints last, or
    ``{"error": ...}`` with the failure's last line.

    Args:
        script: A script with a ``--cell`` option (this one, or one that imports another
            ``nets`` first, as ``bench_ab.py`` does).
        cell: The cell and its ``method``, passed as JSON.
        env: The process's environment (default this one's).
    """
    try:
        return run_script(script, ["--cell", json.dumps(cell)], env)
    except RuntimeError as e:
        return {"error": str(e)}


def run_script(script: str, args: list[str], env: dict | None = None):
    """``python script ARGS`` in a fresh process, from the repository's root: the JSON it
    prints on its last line.

    Args:
        script: The script's path.
        args: Its arguments.
        env: The process's environment (default this one's).

    Raises:
        RuntimeError: The process failed; the message is its last line of standard error.
    """
    p = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip().splitlines() or ["failed"])[-1][:120])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """``--cell CELL``: print :func:`run_cell`'s row for the JSON cell ``CELL`` (with its
    ``method``) as one JSON line: :func:`measure`'s fresh process.

    Args:
        argv: Command-line arguments (default ``sys.argv[1:]``).
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", required=True, help="the cell and its method, as JSON")
    print(json.dumps(run_cell(json.loads(ap.parse_args(argv).cell))))


if __name__ == "__main__":
    main()
