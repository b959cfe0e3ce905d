"""Where do the tuned learning rates lie? One seed, wide half-decade grids, every model.

For each model (zoo names or scaled MLPs ``mlp-sS``) and batch size 8 and 64, trains seed 0 for
``--steps`` steps at every rate of SGD (momentum 0.9) 1e-3..0.3 and Adam 1e-4..3e-2 on the
256-sample pool, and writes one JSON line per run: the rate, the initial and final pool loss
(``null`` for a diverged run), the divergence step, the pool-loss curve (4 evaluations), the
wall time and the load average. This is the sweep the figures' quick budgets
(`figures.budgets`) were chosen from: a rate whose neighbours on both sides are worse is inside
the grid. One torch thread.

Run:  .venv/bin/python benchmarks/gap_lr_sweep.py --steps 100 --models resnet vgg vit gpt bert
      mixer mlp mlp-s30 > benchmarks/results/gap-lr-sweep.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from nets.studies.tasks import scaled_mlp_task, zoo_task
from nets.studies.training import TrainConfig, train

GRIDS = {"sgd": (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3), "adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--models", nargs="+", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.models:
        task = scaled_mlp_task(float(name[5:])) if name.startswith("mlp-s") else zoo_task(name)
        pool = task.pool(256)
        for b in (8, 64):
            for opt, lrs in GRIDS.items():
                for lr in lrs:
                    t0 = time.perf_counter()
                    r = train(task.build, pool, TrainConfig(opt, lr, args.steps, b, seed=0,
                                                            eval_every=args.steps // 4))
                    print(json.dumps({"task": name, "B": b, "opt": opt, "lr": lr,
                                      "T": args.steps, "L0": r.initial_loss,
                                      "final": None if r.diverged else r.final_loss,
                                      "div": r.diverged_step,
                                      "curve": r.eval_losses.tolist(),
                                      "s": time.perf_counter() - t0,
                                      "load": os.getloadavg()[0]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
