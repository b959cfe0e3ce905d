"""Command line for the training studies (registered into ``nets`` by :func:`register`).

Examples::

    nets gap --model gpt --quick               # tuned SGD vs Adam at two batch sizes, and JS0
    nets gap --model vgg --profile default --json
    nets table1 --profile default              # Table 1 / Figure 7 data for the whole zoo
    nets hetero --scales 1 3 10 30             # Figure 5(a): scaled MLP
    nets lnstudy --depths 2 4 8 16 24          # Post-LN / Pre-LN / Admin output change
    nets finetune                              # Figure 6 analogue
    nets advise --model my_module:make_model   # is SGD likely to lag Adam on my model?

Training results are cached under ``--cache`` (default ``$NETS_CACHE`` or ``runs/cache``) keyed
by their settings and the code version; rerunning a command reuses (and an interrupted one
resumes from) the runs already stored.
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from quadlab.progress import Progress
from quadlab.tables import format_table

from . import zoo
from .gap import PROFILES, GapReport, measure_gap
from .tasks import get_task

__all__ = ["register"]


def _jsonable(obj):
    """Replace non-finite floats by ``None`` so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _profile(args):
    name = "quick" if getattr(args, "quick", False) else args.profile
    return PROFILES[name]


def _runs_per_task(profile, n_batch: int) -> int:
    return n_batch * (len(profile.sgd_lrs) + len(profile.adam_lrs)) * len(profile.seeds) + 1


def _gap_rows(rep: GapReport) -> list[dict]:
    rows = []
    for r in rep.results:
        rows.append({"task": rep.task, "B": r.batch_size, "js0": rep.js0,
                     "sgd_lr": r.sgd.lr, "sgd_loss": r.sgd.final_loss,
                     "adam_lr": r.adam.lr, "adam_loss": r.adam.final_loss, "gap": r.gap,
                     "edge": ("S" if r.sgd.at_edge else "") + ("A" if r.adam.at_edge else ""),
                     "div": sum(g.diverged for g in r.sgd.grid + r.adam.grid)})
    return rows


GAP_COLUMNS = [("task", "task", ""), ("B", "batch", "d"), ("js0", "JS0", ".3f"),
               ("sgd_lr", "SGD lr", ".3g"), ("sgd_loss", "SGD loss", ".4f"),
               ("adam_lr", "Adam lr", ".3g"), ("adam_loss", "Adam loss", ".4f"),
               ("gap", "gap ln(S/A)", ".3f"), ("edge", "lr@edge", ""),
               ("div", "diverged lrs", "d")]


def _cmd_gap(args) -> int:
    profile = _profile(args)
    sizes = tuple(args.batch_sizes) if args.batch_sizes else profile.batch_sizes
    get_task(args.model)  # fail early on a bad name
    total = _runs_per_task(profile, len(sizes))
    with Progress(total, f"gap {args.model}", enabled=None if not args.quiet else False) as bar:
        rep = measure_gap(args.model, profile, batch_sizes=sizes, cache_dir=args.cache,
                          progress=bar.advance)
    if args.json:
        print(json.dumps(_jsonable(rep.to_dict()), indent=1))
        return 0
    print(f"# {args.model}: profile {profile.name} ({profile.steps} steps, seeds "
          f"{list(profile.seeds)}); gap = ln(L_SGD / L_Adam) of the tuned final training "
          "losses (> 0: SGD lags)")
    print(f"JS0 = {rep.js0:.4f}  (95% bootstrap over probes [{rep.js0_low:.4f}, "
          f"{rep.js0_high:.4f}])")
    print(format_table(_gap_rows(rep), GAP_COLUMNS))
    return 0


def _cmd_table1(args) -> int:
    from .table1 import table1

    profile = _profile(args)
    tasks = args.tasks or list(zoo.MODELS)
    for t in tasks:
        get_task(t)
    total = len(tasks) * _runs_per_task(profile, len(profile.batch_sizes))
    with Progress(total, "table1", enabled=None if not args.quiet else False) as bar:
        tab = table1(tasks, profile, cache_dir=args.cache, progress=bar.advance)
    if args.json:
        print(json.dumps(_jsonable(tab.to_dict()), indent=1))
        return 0
    rows = [r for rep in tab.reports for r in _gap_rows(rep)]
    print(f"# Table 1 (profile {profile.name}): JS0 at initialization and the tuned SGD–Adam "
          "gap ln(L_SGD / L_Adam)")
    print(format_table(rows, GAP_COLUMNS))
    for b, c in tab.correlations.items():
        if c is None:
            print(f"B={b}: too few usable tasks for a rank correlation "
                  f"(excluded: {tab.excluded[b]})")
            continue
        print(f"B={b}: Spearman rho(JS0, gap) = {c.rho:+.3f} (n={c.n}, p={c.pvalue:.3g}); "
              f"95% bootstrap [{c.low:+.3f}, {c.high:+.3f}], Fisher z [{c.fisher_low:+.3f}, "
              f"{c.fisher_high:+.3f}]" + (f"; excluded {tab.excluded[b]}"
                                          if tab.excluded[b] else ""))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="default", choices=tuple(PROFILES),
                   help="budget (default: default; see nets/README_TRAINING.md)")
    p.add_argument("--quick", action="store_true", help="the tiny 'quick' profile")
    p.add_argument("--cache", default=None, help="cache folder (default $NETS_CACHE or "
                   "runs/cache)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: small models run best single-threaded)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _with_threads(func):
    def run(args):
        if args.threads < 1:
            raise ValueError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
        return func(args)

    return run


def register(sub) -> None:
    """Add the training subcommands to the ``nets`` sub-parser collection ``sub``."""
    g = sub.add_parser("gap", help="tuned SGD (momentum) vs Adam gap and JS0 of one model")
    g.add_argument("--model", required=True,
                   help="zoo model, mlp-s<S>, postln<N>, preln<N>, admin<N>, gpt-dialect, gpt-ft")
    g.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                   help="override the profile's batch sizes")
    _common(g)
    g.set_defaults(func=_with_threads(_cmd_gap))
    t = sub.add_parser("table1", help="Table 1 / Figure 7: JS0 and gap for many models, "
                       "with Spearman rho")
    t.add_argument("--tasks", nargs="+", default=None, help="task names (default: the zoo)")
    _common(t)
    t.set_defaults(func=_with_threads(_cmd_table1))
