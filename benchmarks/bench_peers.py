"""Hessian spectra: nets against hessian-eigenthings, curvlinops and the authors' algorithm.

Every cell of the grid (model × full/blockwise × probes × Lanczos steps × threads) runs each
method in a fresh subprocess (``runner.py --cell``, so each one's peak resident memory is its
own) on the same model, data and loss (``problems.py``), and reports wall time,
Hessian-vector products per second, peak memory, the time of one product divided by the time
of one gradient of the same data, and nets' speed ratio to each peer. Equal steps and probes
everywhere; all methods run attention on PyTorch's math kernel (fused kernels have no double
backward).

Methods:
  * nets: ``nets.full_spectrum`` / ``nets.blockwise_spectrum`` (mode ``auto``: calibrated
    product, all blocks and probes in lockstep, full reorthogonalization), density included.
  * hessian-eigenthings 1.0.0a5: ``HessianOperator`` + ``spectral_density`` (double-backward
    HVPs, full reorthogonalization); blockwise = one operator per block (``param_filter``).
  * curvlinops 3.0.1 (full only; it has no blockwise spectra): ``HessianLinearOperator`` +
    ``lanczos_approximate_spectrum`` with the spectral boundaries given (no ARPACK estimate).
  * authors (blockwise only, ``authors.py``), re-implemented from the description of
    github.com/zyushun/hessian-spectrum: per probe and step, one forward and graph-building
    backward per batch, then one double backward per block from that graph; plain Lanczos (no
    reorthogonalization); the density on a 50,000-point grid by Python loops. Its Lanczos
    (HVP) phase is also timed alone.

Models: the zoo GPT, and a Hugging Face ``GPT2LMHeadModel`` built from a small config at two
sizes (random weights; no download), next-token cross-entropy.

Optional: ``--compile`` adds a ``nets+compile`` row to every full-spectrum cell:
``nets.full_spectrum(..., compile=True)`` (forward-over-reverse product compiled by
``torch.compile``; the compilation is part of its time, as it would be for a user).

Optional: ``--reorth partial`` runs nets with partial reorthogonalization (its targets are
then those of ``reorth="partial"``) and adds a ``nets+full-reorth`` row to every cell: nets
with the default full reorthogonalization in the same rounds, whose ``x`` is its time over the
partial run's (what partial reorthogonalization gained on that cell).

Every row records the 1-minute load average (``os.getloadavg``) when its process started, and
the code that measured it: ``commit`` (git's short hash, ``+changes`` when the working tree's
``nets``, ``labkit``, the measuring modules or this script differ from it) and ``code`` (a
hash of those sources, ``reports.code_version``), and the CPU kernels torch ran on
(``cpu``, ``reports.cpu_kernels``: ``AVX2``, ``AVX512``; the nets row's notes say ``at <commit>
on <kernels>``): machines of one kind differ there, and so do a cell's ratios. A
grid measured in parts (``--resume``, ``--only``) thus says which rows come from which code;
``--resume`` measures again every cell whose rows another code measured, or fewer rounds than
``--rounds`` asks, unless ``--keep-stale`` keeps them (their commit is then shown in the nets
row's notes).

Every row also reports ``λmax``, the largest Ritz value (blockwise: of every block, the table
shows the largest); nets, hessian-eigenthings and the authors' algorithm compute the same
quantity, curvlinops returns a density on a grid only (no Ritz values: blank).

Run:  python benchmarks/bench_peers.py --grid smoke|quick|full|full-spectra|paper-steps|gpu|gpu-full
[--compile] [--reorth full|partial] [--out FILE] [--json FILE [--resume [--keep-stale]
[--render-only]]] [--only FIELD=V1,V2 ...]
(smoke, the test suite's: a 31-parameter MLP in float64, 31 steps, so every Lanczos run spans
its whole space and every method's λmax is the exact one; seconds. quick, ``make
bench-spectrum``: zoo GPT and the smaller GPT-2; full with 1 and 3 probes, blockwise with 1;
10 steps; one thread. full, ``make bench-spectrum-full``: the three models, full and blockwise
with 1, 3 and 10 probes, 10 and 30 steps, 1 and 2 threads. full-spectra: full's full-spectrum
cells alone; paper-steps: the three models' full spectrum at the paper's 100 Lanczos steps, one
probe, one thread (both ``make bench-spectrum-partial``). gpu, ``make gpu-check`` on a CUDA
GPU: the ``gpt-gpu`` model, the GPT-2-small-sized rung of the ``gpu`` ladder profile, blockwise
on the first layer's six matrices with 3 probes and 10 steps, the issue's GPU target; a cell's
memory columns are then the GPU allocator's. gpu-full: the same model's full spectrum on a GPU,
3 probes and 10 steps, against hessian-eigenthings and curvlinops; with ``--compile``, where
``torch.compile`` should pay first.) ``--json`` writes every row's measurements, with
each block's λmax.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout: the repository's nets
sys.path.insert(0, str(ROOT / "benchmarks"))  # the modules beside it

import runner  # noqa: E402
from meters import GRADIENT_REPEATS  # noqa: E402
from reports import code_version, cpu_kernels, machine_note, read_json, reusable  # noqa: E402
from verdicts import (  # noqa: E402
    INTERVAL_NOTE,
    MEMORY_INTERVAL_NOTE,
    cost_per_product,
    memory_ratio,
    speed_ratio,
    verdict,
    with_spread,
)

from labkit.atomic import atomic_write_bytes  # noqa: E402
from nets.cli.common import memory_budget  # noqa: E402
from nets.engine.lanczos import REORTH_MODES  # noqa: E402
from nets.studies.gpucheck import GPT_BLOCKS  # noqa: E402

#: the smoke grid shrinks the authors' density grid (50,000 points) to 500: seconds, not minutes
GRIDS = {"smoke": dict(models=["mlp-xs"], probes=[1], steps=[31], threads=[1],
                       density_bins=500),
         "quick": dict(models=["gpt", "gpt2-s"], probes=[1, 3], steps=[10], threads=[1]),
         "full": dict(models=["gpt", "gpt2-s", "gpt2-m"], probes=[1, 3, 10], steps=[10, 30],
                      threads=[1, 2]),
         # the whole grid's full-spectrum cells alone (make bench-spectrum-partial)
         "full-spectra": dict(models=["gpt", "gpt2-s", "gpt2-m"], probes=[1, 3, 10],
                              steps=[10, 30], threads=[1, 2], kinds=["full"]),
         # the paper's Lanczos chain (100 steps) on the full spectrum, one probe, one thread,
         # where the reorthogonalization's share of a run is largest (make
         # bench-spectrum-partial runs it with --reorth partial too)
         "paper-steps": dict(models=["gpt", "gpt2-s", "gpt2-m"], probes=[1], steps=[100],
                             threads=[1], kinds=["full"]),
         # make gpu-check: the GPT-2-small-sized model on one GPU, blockwise on the first
         # layer's matrices (the blocks of `nets gpu-check`), the GPU target
         "gpu": dict(models=["gpt-gpu"], probes=[3], steps=[10], threads=[4], device="cuda",
                     block_names=list(GPT_BLOCKS), kinds=["blocks"]),
         # the same model's full spectrum on one GPU: nets (with --compile, compiled too)
         # against hessian-eigenthings and curvlinops
         "gpu-full": dict(models=["gpt-gpu"], probes=[3], steps=[10], threads=[4],
                          device="cuda", kinds=["full"])}


def grid(name: str) -> list[dict]:
    """The cells of grid ``name`` (a key of :data:`GRIDS`)."""
    quick = name != "full"
    g = GRIDS[name]
    models, probes, steps, threads = g["models"], g["probes"], g["steps"], g["threads"]
    extra = {k: g[k] for k in ("density_bins", "device") if k in g}
    cells = []
    for m in models:
        for kind in g.get("kinds", ("full", "blocks")):
            # quick, smoke: blockwise with one probe only (the authors' density loop alone takes
            # minutes per probe on a loaded 2-core machine)
            for p in probes if kind == "full" or not quick else probes[:1]:
                for k in steps:
                    for t in threads:
                        cells.append(dict(model=m, kind=kind, probes=p, steps=k, threads=t,
                                          **extra, **({"block_names": g["block_names"]}
                                                      if kind == "blocks" and "block_names" in g
                                                      else {})))
    return cells


PEERS = {"full": ["eigenthings", "curvlinops"], "blocks": ["authors", "eigenthings"]}


def peak_over_every_run(r: dict) -> bool:
    """Whether a row's peak columns are the peak over all its in-process runs: a row written
    before the peak became the first run's (it lacks ``peak_all_bytes``) whose runs were
    repeated in their process (more runs than rounds). Its peak then includes what the
    allocator kept between the repeats (:func:`run_cell`), so it is not comparable with a
    newer row's."""
    return "peak_all_bytes" not in r and len(r.get("runs") or ()) > r.get("rounds", 1)


def time_split(r: dict) -> str:
    """Where a nets row's time went: ``, products a%, graph builds b%, calibration c%`` of
    the run (its median ``product_s``, ``graph_s`` and ``calibration_s``, the products of
    the modes ``"auto"`` tried and did not choose, over its median ``seconds``; the rest is
    nets' overhead: data checks, Lanczos arithmetic, densities). The calibration's share is
    left out where it is zero or the row has none (an older script's); all of it is empty for
    a row measured before the split."""
    if "product_s" not in r:
        return ""
    cal = r.get("calibration_s") or 0.0
    return (f", products {r['product_s'] / r['seconds']:.0%}, graph builds "
            f"{r['graph_s'] / r['seconds']:.0%}"
            + (f", calibration {cal / r['seconds']:.0%}" if cal > 0 else ""))


def targets(kind: str, nets_r: dict, peers: dict) -> list[str]:
    """The issue's targets for one cell: ``name: value [spread] met/MISSED/within noise``.

    A ratio's interval is :func:`ratio_interval`'s over the two rows' runs (a cost per
    product: :func:`cost_per_product`'s, nets' runs per product against its gradient's runs),
    so a verdict that the machine's noise could flip is ``within noise``.

    A speed target not met is followed by ``[products and builds: b]`` where nets' row has
    ``product_s`` (the seconds its Hessian-vector products took, :meth:`nets.BlockHVP.info`'s
    ``product_seconds``): ``b`` is the value nets would reach if its run were nothing but
    those products and the gradient graphs they ran on (``graph_s``, ``graph_seconds``: once
    per batch where every graph is kept, once per batch and call where the budget holds one
    at a time, the price of that budget), i.e. the peer's median time over
    ``product_s + graph_s`` (for a cost per product, that time per product in gradients):
    the bound on what removing nets' overhead (data checks, calibration, Lanczos arithmetic,
    densities) can gain. ``beyond them`` marks a target that this bound misses too: only
    cheaper products or graph builds (or, for builds, a larger budget) could meet it.
    """
    out = []
    alone = (None if nets_r.get("product_s") is None
             else nets_r["product_s"] + nets_r.get("graph_s", 0.0))

    def check(label, value, lo, hi, target, higher=True, bound=None):
        v = verdict(value, lo, hi, target, higher)
        text = f"{label} {with_spread(value, lo, hi)} {v}"
        if bound is not None and v != "met":
            beyond = bound < target if higher else bound > target
            text += f" [products and builds: {bound:.2f}{', beyond them' if beyond else ''}]"
        out.append(text)

    def ratio(peer: dict, key: str, label: str, target: float) -> None:
        check(label, *speed_ratio(peer, nets_r, key), target,
              bound=None if alone is None else peer[key] / alone)

    def per_product(label: str, target: float) -> None:
        check(label, *cost_per_product(nets_r), target, higher=False,
              bound=None if alone is None else alone / nets_r["hvps"] / nets_r["grad_s"])

    if kind == "full":
        for p in ("eigenthings", "curvlinops"):
            if p in peers:
                ratio(peers[p], "seconds", f"x{p}>=1.5:", 1.5)
        per_product("grads/HVP<=3:", 3)
    else:
        if "authors" in peers:
            ratio(peers["authors"], "seconds", "xauthors>=3:", 3)
            ratio(peers["authors"], "lanczos_s", "xauthors-HVP>=1.5:", 1.5)
        if "eigenthings" in peers:
            e = peers["eigenthings"]
            ratio(e, "seconds", "xeigenthings>=2:", 2)
            check("mem/eigenthings<=1.5:", *memory_ratio(nets_r, e), 1.5, higher=False)
            if "peak_steady_extra_bytes" in nets_r:  # a GPU's: without the first step
                after = nets_r["peak_steady_extra_bytes"] / max(e["peak_extra_bytes"], 1)
                out[-1] += f" [after the first step (calibration): {after:.2f}]"

            if peak_over_every_run(nets_r) or peak_over_every_run(e):
                out[-1] += " [peaks over every run: an older script's]"
        per_product("grads/block-HVP<=0.5:", 0.5)
    return out


def _parser() -> argparse.ArgumentParser:
    """The command line's options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", choices=sorted(GRIDS), default="quick",
                    help="smoke: a 31-parameter MLP (seconds, for the tests); quick: a small "
                         "grid (minutes); full: the issue's whole grid (hours); "
                         "full-spectra: its full-spectrum cells alone; paper-steps: the "
                         "full spectrum at the paper's 100 Lanczos steps; gpu: the "
                         "GPT-2-small-sized model's blockwise cell on a CUDA GPU (make "
                         "gpu-check); gpu-full: its full spectrum on a CUDA GPU")
    ap.add_argument("--quick", action="store_true", help="same as --grid quick")
    ap.add_argument("--compile", action="store_true",
                    help="also time nets with compile=True on the full-spectrum cells")
    ap.add_argument("--out", default=None, help="Markdown report (default: print only)")
    ap.add_argument("--json", default=None, help="also write every row's measurements (JSON)")
    ap.add_argument("--max-memory", type=memory_budget, default=None,
                    help="nets' memory budget: bytes, a size such as 2G, or 'least' "
                         "(max_memory=; default: nets' own, half the available memory): a "
                         "budget below all batches' graphs makes nets hold one batch's graph "
                         "at a time")
    ap.add_argument("--reorth", default="full", choices=REORTH_MODES,
                    help="nets' Lanczos reorthogonalization (reorth=; default full)")
    ap.add_argument("--note", default="", help="a line on the conditions (load, machine)")
    ap.add_argument("--resume", action="store_true",
                    help="with --json: keep the measurements that file already holds (written "
                         "after every cell) and run only the missing or failed ones, e.g. after "
                         "an interruption")
    ap.add_argument("--render-only", action="store_true",
                    help="with --resume: measure nothing, write the report from the rows the "
                         "--json file holds (the cells it lacks are listed as not measured), "
                         "e.g. for a grid stopped before its end")
    ap.add_argument("--keep-stale", action="store_true",
                    help="with --resume: also keep the cells that other code measured (another "
                         "commit or changed sources), or fewer rounds than --rounds (default: "
                         "measure them again), those inside --only too: only the cells the "
                         "file lacks are then measured (cells outside --only are reported as "
                         "the file has them either way)")
    ap.add_argument("--only", action="append", default=[], metavar="FIELD=V1,V2",
                    help="measure only the cells whose FIELD (model, kind, probes, steps, "
                         "threads; kind is full or blocks) is one of the values; repeat to "
                         "narrow further. With --resume the other cells are reported from the "
                         "file (or as not measured), else left out")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each method of a cell this many times, each time in a fresh "
                         "process, the methods interleaved (their order alternating by round), and "
                         "pool the runs: the median and the spread then span the rounds, so a "
                         "slow phase of a shared machine falls on every method (default 1)")
    ap.add_argument("--in-process", action="store_true",
                    help="run every method in this process (no subprocess start-up: the smoke "
                         "test's mode); the peak columns are then the whole process's, not "
                         "each method's")
    return ap


def _flags(args: argparse.Namespace) -> str:
    """The options a run was given, as its report's header quotes them."""
    return f"--grid {args.grid}" + (" --compile" if args.compile else "") + (
        f" --max-memory {args.max_memory}" if args.max_memory else "") + (
        f" --reorth {args.reorth}" if args.reorth != "full" else "") + (
        " --in-process" if args.in_process else "") + (
        " --resume" if args.resume else "") + (" --keep-stale" if args.keep_stale else "") + (
        " --render-only" if args.render_only else "") + (
        f" --rounds {args.rounds}" if args.rounds > 1 else "") + "".join(
        f" --only {o}" for o in args.only)


def _header(args: argparse.Namespace, device: str, read: int, stale: int, shown_stale: int
            ) -> list[str]:
    """The report's title, provenance, column definitions and table head.

    ``read``: rows read back from ``--json``; ``stale``, ``shown_stale``: cells of that file
    that other code (or fewer rounds) measured, and how many of them are reported as they
    are."""
    g = GRIDS[args.grid]
    settings = ", ".join(f"{k} {v}" for k, v in g.items() if k != "kinds")
    kinds = " and ".join({"full": "full", "blocks": "blockwise"}[k]
                         for k in g.get("kinds", ("full", "blocks")))
    return [f"# Hessian spectra: nets vs peers ({args.grid} grid)", "",
            f"Generated by `benchmarks/bench_peers.py {_flags(args)}` on "
            f"{machine_note(device)}, load average "
            f"{os.getloadavg()[0]:.1f} at the start. Grid: {settings}; {kinds} "
            f"spectra. {args.note}"
            + (f" Resumed: {read} rows were read from {args.json}, "
               "measured by an earlier run of this grid (their load column says under what "
               "load)." if read else "")
            + (f" {stale} cells of that file were measured by other code or in fewer "
               f"rounds than --rounds {args.rounds}: "
               f"{shown_stale} reported as they are (the nets row's notes name the "
               f"commit), {stale - shown_stale} measured again." if stale else "")
            + (" Nothing was measured by this command (--render-only): cells the file lacks "
               "are listed as not measured." if args.render_only else ""), "",
            "Times are wall seconds of one run (spectrum + density) in a fresh process, the "
            f"median of {runner.REPEATS} runs in that process where the first took under "
            f"{runner.REPEAT_BELOW:g} s (the notes give a target's value and its interval, and "
            "call it `within noise` where the interval straddles the target; for a ratio, "
            f"{INTERVAL_NOTE}; for a cost per product, the same interval over nets' runs per "
            f"product against the gradient's runs ({GRADIENT_REPEATS} warm gradients per "
            "round, after one untimed), or for a row measured before the gradient's runs "
            "were kept, the sign test's interval of nets' median run (the range of its runs "
            "below 9 runs) over the one gradient time; for a memory ratio (of the largest "
            f"rises), {MEMORY_INTERVAL_NOTE}); a row measured in several "
            "rounds (`--rounds`, the nets row's notes say how many: one fresh process per "
            "method and round, the methods interleaved, their order alternating by round) "
            "pools the runs of all its rounds, "
            "and its peak and load columns are the largest of its rounds'; "
            "`HVP/s` counts full-data products (blockwise: block products); `gr/HVP` is the "
            "time of one product over the time of one gradient of the same data; `peak` is "
            + ("the process's peak RSS" if device == "cpu" else
               "the GPU allocator's peak (`torch.cuda.max_memory_allocated`)")
            + ", `+peak` its rise during the (first) run (MiB; a "
            "repeated run's peak creeps up from what the allocator kept of the run before, "
            "so only the first counts); `x` = peer "
            "time / nets time; `λmax` is the largest Ritz value (blockwise: the largest over "
            "the blocks); `load` is the 1-minute load average when the method's process "
            "started (the machine's other jobs: timings are only comparable at equal load). "
            "After a speed target not met, `[products and builds: b]` is the value nets "
            "would reach if its run were nothing but its Hessian-vector products and the "
            "gradient graphs they ran on (the autograd passes, from nets' own "
            "`product_seconds` and `graph_seconds`; the builds are once per batch where every "
            "graph is kept, once per batch and call where the budget holds one at a time): "
            "the bound on what cutting nets' overhead can gain; `beyond them` marks a target "
            "that bound misses too. The nets "
            "row's notes say what share of its run the products, the graph builds and "
            "(where it tried other modes) the calibration took (the rest is nets' overhead: "
            "data checks, Lanczos arithmetic, densities)"
            + ("; on a GPU, `[after the first step (calibration): m]` after the memory "
               "target is the same ratio for nets' rise after its first Lanczos step: "
               "without the data check and the calibration"
               if device.startswith("cuda") else "") + ".",
            "", "| model | kind | P | k | thr | method | s | HVP/s | gr/HVP | peak | +peak | x | "
            "λmax | load | notes |", "|" + "---|" * 15]


def _table_row(cell: dict, method: str, r: dict, nets_row: dict, peers: dict) -> str:
    """One method's row of the table on ``cell``: its measurements, its speed ratio to nets
    (``nets_row``) and, in the nets row, the targets against ``peers`` (their rows)."""
    head = (f"| {cell['model']} | {cell['kind']} | {cell['probes']} | {cell['steps']} | "
            f"{cell['threads']} | {method} |")
    if r.get("error") == "not measured":  # a cell the file lacks: nothing failed
        return f"{head} not measured | | | | | | | | |"
    if "error" in r:
        return f"{head} failed | | | | | | | | {r['error']} |"
    ratio = "" if method == "nets" or "error" in nets_row else \
        f"{r['seconds'] / nets_row['seconds']:.2f}"
    note = ""
    if method == "nets":
        n_rounds = r.get("rounds", 1)
        note = (f"at {r.get('commit', 'unknown')}"
                + (f" on {r['cpu']}" if "cpu" in r else "")
                + (f", {n_rounds} rounds" if n_rounds > 1 else "")
                + f", mode {r['mode']}, graphs {r['graphs']}"
                + (f", reorth {r['reorth']} ({r['reorthogonalized']} passes)"
                   if r.get("reorth", "full") != "full" else "")
                + f"{time_split(r)}; "
                + "; ".join(targets(cell["kind"], nets_row, peers)))
    if method == "authors":
        note = f"Lanczos phase {r['lanczos_s']:.2f} s"
    if method == "nets+compile":
        note = f"mode {r['mode']}; compiled, compilation included"
    if method == "nets+full-reorth":
        note = (f"mode {r['mode']}, graphs {r['graphs']}; full reorthogonalization (the "
                f"default): x = its time / the partial run's")
    top = f"{max(r['top'].values()):.6g}" if r.get("top") else ""
    return (f"{head} {r['seconds']:.2f} | {r['hvps'] / r['seconds']:.1f} | "
            f"{r['seconds'] / r['hvps'] / r['grad_s']:.2f} | "
            f"{r['peak_bytes'] / 2**20:.0f} | {r['peak_extra_bytes'] / 2**20:.0f} | "
            f"{ratio} | {top} | {r['load']:.1f} | {note} |")


def _tail(rows: list[str], records: list[dict], took: float | None) -> list[str]:
    """The report's end: the commits and CPU kernels the cells were measured at (a row
    measured before rows named their kernels counts as ``not recorded``) and the targets' count
    (``took``: the run's seconds, ``None`` for a report that measured nothing)."""
    misses = sum(row.count("MISSED") for row in rows)
    met = sum(row.count(" met") for row in rows)
    noise = sum(row.count("within noise") for row in rows)
    beyond = sum(row.count("beyond them") for row in rows)
    bounded = sum(row.count("[products and builds") for row in rows)
    nets_rows = [r for r in records if r.get("method") == "nets" and "error" not in r]
    commits = Counter(r.get("commit", "unknown") for r in nets_rows)
    kernels = Counter(r.get("cpu", "not recorded") for r in nets_rows)
    old_peaks = sum(peak_over_every_run(r) for r in records if "error" not in r)
    return ["", "Cells measured at: " + (", ".join(f"{c} ({n})" for c, n in commits.items())
                                         or "none") + "."
            + (" On CPU kernels: " + ", ".join(f"{k} ({n})" for k, n in sorted(kernels.items()))
               + " (each cell's ratios come from one machine; its times compare with "
               "other cells' only on the same kernels)." if nets_rows else "")
            + (f" {old_peaks} rows' peak columns are the peak over all their runs in their "
               "process (measured before the peak became the first run's; their memory "
               "targets say so)." if old_peaks else ""),
            "", f"Targets: {met} met, {misses} missed, {noise} within noise (the interval "
            "over the repeated runs straddles the target). "
            + (f"Of the {bounded} speed targets missed or within noise whose nets row has "
               f"its product time, {beyond} stay out of reach of nets' products and the "
               "graph builds they ran on (`beyond them`): only cheaper products or builds "
               "(or, for builds, a larger budget) could meet them; the other "
               f"{bounded - beyond} are within reach of cutting nets' overhead. "
               if bounded else "") + (
        "Nothing measured by this command." if took is None else
        f"Whole run {took:.0f} s; load average {os.getloadavg()[0]:.1f} at the end.")]


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``).

    Args:
        argv: Command-line arguments.
    """
    ap = _parser()
    args = ap.parse_args(argv)
    if args.quick:
        args.grid = "quick"
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    device = GRIDS[args.grid].get("device", "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available() and not args.render_only:
        ap.error(f"--grid {args.grid} runs on {device} and this machine has no CUDA device "
                 "(torch.cuda.is_available() is False): run it on a GPU machine (make "
                 "gpu-check), or write its report from saved rows with --resume --render-only")
    if args.resume and not args.json:
        ap.error("--resume needs --json (the file the finished cells are read from)")
    if args.render_only and not args.resume:
        ap.error("--render-only needs --resume and --json (the rows to write the report from)")
    if args.keep_stale and not args.resume:
        ap.error("--keep-stale needs --resume and --json (the rows to keep)")
    try:
        only = parse_only(args.only, grid(args.grid))
    except ValueError as e:
        ap.error(str(e))
    version = code_version(__file__)
    kernels = cpu_kernels()
    fresh, stale = _finished_cells(Path(args.json), args, version) if args.resume else ({}, {})
    # a stale cell (measured by other code) is measured again where this run measures, and
    # reported as it is elsewhere (outside --only, --render-only) or with --keep-stale
    measured_here = {_cell_key(c) for c in grid(args.grid) if selected(c, only)}
    shown_stale = {k for k in stale
                   if args.keep_stale or args.render_only or k not in measured_here}
    done = {**fresh, **{k: stale[k] for k in shown_stale}}
    lines = _header(args, device, sum(map(len, done.values())), len(stale), len(shown_stale))
    print("\n".join(lines), flush=True)
    rows = []
    records: list[dict] = []
    t_start = time.perf_counter()
    # cells read back but not reached yet stay in the file until they are: an interruption of
    # a resumed run then loses nothing that was measured before
    pending = {**stale, **fresh}
    for cell in grid(args.grid):
        pending.pop(_cell_key(cell), None)
        res = dict(done.get(_cell_key(cell), {}))
        chosen = selected(cell, only)
        if not chosen and not args.resume:
            continue
        todo = [m for m in _methods(cell, args.compile, args.reorth) if m not in res]
        if args.render_only or not chosen:
            res.update({m: {"error": "not measured"} for m in todo})
            todo = []
        # rounds interleave the methods (nets, peers, then the reverse, ...): a slow phase of the
        # machine then falls on every method rather than on one
        rounds: dict[str, list[dict]] = {m: [] for m in todo}
        for r in range(args.rounds if todo else 0):
            for method in runner.round_order(todo, r):
                run = {**cell, "method": method, "max_memory": args.max_memory,
                       "reorth": _reorth_of(method, args.reorth)}
                rounds[method].append(runner.measure(run, in_process=args.in_process))
        for method in todo:
            row = runner.pool_rounds(rounds[method])
            res[method] = row if "error" in row else {**row, **version, "cpu": kernels}
        peers = {m: r for m, r in res.items() if m != "nets" and "error" not in r}
        for method, r in res.items():
            records.append({**cell, "method": method, **r})
            rows.append(_table_row(cell, method, r, res["nets"], peers))
            print(rows[-1], flush=True)
        if args.json and not args.render_only:  # after every cell: --resume continues
            later = [r for kept in pending.values() for r in kept.values()]
            atomic_write_bytes(Path(args.json), json.dumps(records + later, indent=1).encode())
    tail = _tail(rows, records, None if args.render_only else time.perf_counter() - t_start)
    print("\n".join(tail), flush=True)
    if args.out:
        atomic_write_bytes(Path(args.out), ("\n".join(lines + rows + tail) + "\n").encode())


#: What identifies a cell of a grid.
CELL_FIELDS = ("model", "kind", "probes", "steps", "threads", "density_bins", "device",
               "block_names")


def _cell_key(cell: dict) -> str:
    """A cell's identity (:data:`CELL_FIELDS`) as a string."""
    return json.dumps({k: cell.get(k) for k in CELL_FIELDS}, sort_keys=True)


def parse_only(specs: list[str], cells: list[dict]) -> dict[str, set]:
    """``--only FIELD=V1,V2`` options as ``{field: allowed values}``.

    Args:
        specs: The ``--only`` options, each ``FIELD=V1,V2``.
        cells: The grid's cells (:func:`grid`): every value must be one some cell has, so a
            misspelt one (``kind=blockwise``) is refused instead of selecting nothing.

    Raises:
        ValueError: A malformed option, an unknown field, a non-integer count or a value no
            cell of the grid has.
    """
    fields = {"model": str, "kind": str, "probes": int, "steps": int, "threads": int}
    only: dict[str, set] = {}
    for spec in specs:
        field, sep, values = spec.partition("=")
        if not sep or field not in fields or not values:
            raise ValueError(f"--only {spec!r}: expected FIELD=V1,V2 with FIELD one of "
                             f"{', '.join(fields)}, e.g. --only kind=full")
        try:
            allowed = {fields[field](v) for v in values.split(",")}
        except ValueError:
            raise ValueError(f"--only {spec!r}: {field} takes integers") from None
        values_here = {c[field] for c in cells}
        if allowed - values_here:
            raise ValueError(f"--only {spec!r}: this grid has no cell with {field} "
                             f"{', '.join(map(str, sorted(allowed - values_here)))}; its "
                             f"cells have {field} {', '.join(map(str, sorted(values_here)))}")
        only[field] = only.get(field, allowed) & allowed
    return only


def selected(cell: dict, only: dict[str, set]) -> bool:
    """Whether ``cell`` passes every ``--only`` filter (see :func:`parse_only`)."""
    return all(cell[field] in allowed for field, allowed in only.items())


def _methods(cell: dict, compile: bool, reorth: str = "full") -> list[str]:
    """The methods a grid runs on ``cell``: nets (and nets compiled, and nets with full
    reorthogonalization when nets runs another), then its peers."""
    extra = ["nets+compile"] if compile and cell["kind"] == "full" else []
    extra += ["nets+full-reorth"] if reorth != "full" else []
    return ["nets", *extra, *PEERS[cell["kind"]]]


def _reorth_of(method: str, reorth: str) -> str:
    """The reorthogonalization ``method`` runs under ``--reorth reorth`` (its rows record it)."""
    return "full" if method == "nets+full-reorth" else reorth


def _finished_cells(path: Path, args: argparse.Namespace, version: dict[str, str]
                    ) -> tuple[dict[str, dict[str, dict]], dict[str, dict[str, dict]]]:
    """The grid's cells and methods that ``path`` holds measured, as two
    ``{cell key: {method: record}}`` maps, each record as the file has it (a method missing or
    failed there is run again): the cells measured by this code, and the stale ones, any of
    whose rows another code measured (``code`` differs from ``version``'s; a cell's ratios
    come from one code), or in fewer rounds than ``--rounds`` asks (then measured again, every
    method in the same rounds, as ``bench_memory.py --resume`` does)."""
    if not path.exists():
        return {}, {}
    records = read_json(path, "resume from")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SystemExit(f"error: {path} is not a list of rows written by --json; delete it "
                         "to start over")
    by_cell: dict[str, dict[str, dict]] = {}
    for r in records:
        if r.get("max_memory") != args.max_memory and "error" not in r:
            raise SystemExit(f"error: {path} was measured with --max-memory "
                             f"{r.get('max_memory')}, not {args.max_memory}; use the same "
                             "options or another --json")
        if (r.get("reorth", "full") != _reorth_of(r.get("method", ""), args.reorth)
                and "error" not in r):
            raise SystemExit(f"error: {path} was measured with --reorth "
                             f"{r.get('reorth', 'full')}, not {args.reorth}; use the same "
                             "options or another --json")
        by_cell.setdefault(_cell_key(r), {})[r.get("method")] = r
    fresh: dict[str, dict[str, dict]] = {}
    stale: dict[str, dict[str, dict]] = {}
    for cell in grid(args.grid):
        have = by_cell.get(_cell_key(cell), {})
        kept = {m: have[m] for m in _methods(cell, args.compile, args.reorth)
                if m in have and "error" not in have[m]}
        if kept:
            # --render-only reports what the file holds, in whatever rounds
            rounds = 1 if args.render_only else args.rounds
            same = all(reusable(r, version["code"], rounds) for r in kept.values())
            (fresh if same else stale)[_cell_key(cell)] = kept
    return fresh, stale


if __name__ == "__main__":
    main()
