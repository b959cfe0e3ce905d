"""Estimate what a gap budget costs: time one training run per model and extrapolate.

For each model, one run of the budget's length at each batch size (Adam, the first rate of the
grid, seed 0, one torch thread, with the budget's evaluations and held-out pool) is timed; the
cost of a Table 1 measurement is that time × the runs of the budget's protocol per optimizer
(``grid``: rates × seeds; ``first-seed``: rates + (2·neighbours + 1)·(seeds − 1), without
extension rounds), summed over both optimizers and the batch sizes. Printed per model and in
total, in wall-clock seconds and in CPU seconds of this process (one torch thread: the CPU time
is close to the wall time on an idle machine, and much less sensitive to the load). Budgets: a
profile of `nets.studies.gap.PROFILES` (``--profile``) or a figure's quick budget from
`figures.budgets` (``--figure fig7`` or ``fig5``). It is an extrapolation from one run per
cell, on whatever load the machine has (the load average is printed): say so when quoting it.

Run:  .venv/bin/python benchmarks/estimate_gap_budget.py [--profile quick | --figure fig7]
      [--seeds 3] [--models mlp gpt] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from figures.budgets import FIG5_QUICK, FIG7_QUICK, gap_profile
from labkit.jsonio import dumps
from labkit.tables import format_table
from nets.studies.gap import PROFILES, GapProfile
from nets.studies.tasks import scaled_mlp_task, zoo_task
from nets.studies.training import TrainConfig, train
from nets.zoo import models as zoo

FIGURES = {"fig7": FIG7_QUICK, "fig5": FIG5_QUICK}


def runs_per_optimizer(prof: GapProfile, rates: int, seeds: int) -> int:
    """Runs of one optimizer at one batch size under the profile's protocol (no extension
    rounds of the first-seed protocol: they happen only when the seeds disagree).

    Args:
        prof: The budget.
        rates: Rates in the optimizer's grid.
        seeds: Seeds.
    """
    if prof.protocol == "grid":
        return rates * seeds
    return rates + min(2 * prof.neighbours + 1, rates) * (seeds - 1)


def _task(name: str):
    return scaled_mlp_task(float(name[5:])) if name.startswith("mlp-s") else zoo_task(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--profile", default=None, choices=list(PROFILES))
    src.add_argument("--figure", default=None, choices=list(FIGURES),
                     help="a figure's quick budget from figures.budgets")
    ap.add_argument("--seeds", type=int, default=None,
                    help="seeds to extrapolate to (default: the budget's)")
    ap.add_argument("--models", nargs="+", default=list(zoo.MODELS),
                    help="zoo models or scaled MLPs mlp-sS")
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.figure:
        prof, label = gap_profile(FIGURES[args.figure]), f"figure {args.figure} quick"
    else:
        prof, label = PROFILES[args.profile or "quick"], f"profile {args.profile or 'quick'}"
    seeds = args.seeds or len(prof.seeds)
    per_b_runs = (runs_per_optimizer(prof, len(prof.sgd_lrs), seeds)
                  + runs_per_optimizer(prof, len(prof.adam_lrs), seeds))
    rows = []
    for name in args.models:
        task = _task(name)
        pool = task.pool(prof.pool_size)
        held = task.heldout_pool(prof.heldout_size) if prof.heldout_size else None
        train(task.build, pool, TrainConfig("adam", 1e-3, 2, prof.batch_sizes[0]))  # warm-up
        per_b, cpu_b = {}, {}
        for b in prof.batch_sizes:
            cfg = TrainConfig("adam", prof.adam_lrs[0], prof.steps, b, seed=0,
                              eval_every=prof.eval_every)
            t0, c0 = time.perf_counter(), time.process_time()
            train(task.build, pool, cfg, heldout=held)
            per_b[b], cpu_b[b] = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"model": name, **{f"run_b{b}": s for b, s in per_b.items()},
                     **{f"cpu_b{b}": s for b, s in cpu_b.items()},
                     "runs": per_b_runs * len(prof.batch_sizes),
                     "total": per_b_runs * sum(per_b.values()),
                     "total_cpu": per_b_runs * sum(cpu_b.values())})
    total = {"model": "total", **{f"{k}_b{b}": sum(r[f"{k}_b{b}"] for r in rows)
                                  for b in prof.batch_sizes for k in ("run", "cpu")},
             "runs": sum(r["runs"] for r in rows), "total": sum(r["total"] for r in rows),
             "total_cpu": sum(r["total_cpu"] for r in rows)}
    cols = ([("model", "model", "")]
            + [(f"run_b{b}", f"one run B={b} (s)", ".2f") for b in prof.batch_sizes]
            + [(f"cpu_b{b}", f"CPU B={b} (s)", ".2f") for b in prof.batch_sizes]
            + [("runs", "runs", "d"), ("total", f"{prof.protocol}, {seeds} seeds (s)", ".0f"),
               ("total_cpu", "CPU (s)", ".0f")])
    print(f"{label}: {prof.steps} steps, {len(prof.sgd_lrs)}+{len(prof.adam_lrs)} rates, "
          f"protocol {prof.protocol} (neighbours {prof.neighbours}), batch sizes "
          f"{prof.batch_sizes}, held-out {prof.heldout_size}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, 1 torch thread")
    print(format_table([*rows, total], cols))
    if args.json:
        with open(args.json, "w") as f:
            f.write(dumps({"budget": label, "settings": prof.settings(),
                           "load": os.getloadavg()[0], "rows": [*rows, total]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
