"""Estimate what a gap budget costs: time one training run per zoo model and extrapolate.

For each model, one run of the budget's length at each batch size (Adam, the first rate of the
grid, seed 0, one torch thread) is timed; the cost of the whole grid of a Table 1 measurement
is that time × rates (SGD + Adam) × seeds, summed over batch sizes. Printed per model and in
total, for the profile's own seeds and for ``--seeds`` seeds (the verdict rules need ≥ 3 for a
training outcome). It is an extrapolation from one run per cell, on whatever load the machine
has: say so when quoting it.

Run:  .venv/bin/python benchmarks/estimate_gap_budget.py [--profile quick] [--seeds 3]
      [--models mlp gpt] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from labkit.jsonio import dumps
from labkit.tables import format_table
from nets.studies.gap import PROFILES
from nets.studies.tasks import zoo_task
from nets.studies.training import TrainConfig, train
from nets.zoo import models as zoo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=list(PROFILES))
    ap.add_argument("--seeds", type=int, default=3, help="seeds to extrapolate to (default 3)")
    ap.add_argument("--models", nargs="+", default=list(zoo.MODELS), choices=zoo.MODELS)
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    prof = PROFILES[args.profile]
    rates = len(prof.sgd_lrs) + len(prof.adam_lrs)
    rows = []
    for name in args.models:
        task = zoo_task(name)
        pool = task.pool(prof.pool_size)
        per_b = {}
        for b in prof.batch_sizes:
            cfg = TrainConfig("adam", prof.adam_lrs[0], prof.steps, b, seed=0,
                              eval_every=prof.eval_every)
            t0 = time.perf_counter()
            train(task.build, pool, cfg)
            per_b[b] = time.perf_counter() - t0
        one_seed = rates * sum(per_b.values())
        rows.append({"model": name, **{f"run_b{b}": s for b, s in per_b.items()},
                     "grid_profile_seeds": one_seed * len(prof.seeds),
                     "grid_n_seeds": one_seed * args.seeds})
    total = {"model": "total", **{f"run_b{b}": sum(r[f"run_b{b}"] for r in rows)
                                  for b in prof.batch_sizes},
             "grid_profile_seeds": sum(r["grid_profile_seeds"] for r in rows),
             "grid_n_seeds": sum(r["grid_n_seeds"] for r in rows)}
    cols = ([("model", "model", "")]
            + [(f"run_b{b}", f"one run B={b} (s)", ".1f") for b in prof.batch_sizes]
            + [("grid_profile_seeds", f"grid, {len(prof.seeds)} seed(s) (s)", ".0f"),
               ("grid_n_seeds", f"grid, {args.seeds} seeds (s)", ".0f")])
    print(f"profile {args.profile}: {prof.steps} steps, {rates} rates, batch sizes "
          f"{prof.batch_sizes}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          "cores, 1 torch thread")
    print(format_table([*rows, total], cols))
    if args.json:
        with open(args.json, "w") as f:
            f.write(dumps({"profile": args.profile, "load": os.getloadavg()[0],
                           "rows": [*rows, total]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
