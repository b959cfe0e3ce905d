"""Same settings, same numbers? The fine-tuning study (Figure 6 analogue) at 1 and 2 threads.

Runs the training half of :func:`nets.studies.finetune.finetune_study` (the pretraining
checkpoint, then :func:`nets.studies.gap.measure_gap` on ``gpt-dialect`` from scratch and
``gpt-ft`` from the checkpoint; JS at the start is left out: it is costly and is not what
differed) several times, each in a fresh interpreter with its own empty cache folder (so the
checkpoint and every training run are recomputed),
at the given torch thread counts, and compares the results number by number: bitwise equal or
not, and the largest relative difference of the final losses and of the gaps. The default is
a reduced budget (pretraining and fine-tuning budgets cut so that it runs in minutes on 2
cores; the code path is the study's own): the question is which runs differ, not the gap.

Run:  .venv/bin/python benchmarks/thread_reproducibility.py [--threads 1 1 2]
      [--pretrain-steps 50] [--steps 30] [--out benchmarks/results/thread-reproducibility.md]

Timings depend on the machine's load (printed with the result).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: One run of the study, in a fresh interpreter: prints the study's dict as JSON.
CHILD = """
import json, sys
import torch
torch.set_num_threads(int(sys.argv[1]))
from labkit.jsonio import dumps
from nets.studies.gap import GapProfile, measure_gap
from nets.studies.tasks import finetune_task
prof = GapProfile(**json.loads(sys.argv[2]))
tasks = {"scratch": finetune_task(False),
         "finetune": finetune_task(True, pretrain_steps=int(sys.argv[3]), cache_dir=sys.argv[4])}
st = {k: measure_gap(t, prof, cache_dir=sys.argv[4], with_js0=False).to_dict()
      for k, t in tasks.items()}
assert torch.get_num_threads() == int(sys.argv[1])
print(dumps({"threads": torch.get_num_threads(), "study": st}))
"""


def _numbers(obj, path=""):
    """Every number of a nested result, by its path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield path, float(obj)


def _rel(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def compare(a: dict, b: dict) -> dict:
    """Bitwise equality and the largest relative differences of two study dicts."""
    na, nb = dict(_numbers(a)), dict(_numbers(b))
    if na.keys() != nb.keys():
        return {"bitwise": False, "same_structure": False}
    diff = {k: _rel(na[k], nb[k]) for k in na}
    losses = [v for k, v in diff.items() if k.endswith("final_loss")]
    gaps = [v for k, v in diff.items() if "/gap/" in k or k.endswith("/gap")]
    lrs = [k for k in diff if k.endswith("/lr") and diff[k] > 0]
    return {"bitwise": all(v == 0.0 for v in diff.values()), "same_structure": True,
            "numbers_differing": sum(v > 0 for v in diff.values()), "numbers": len(diff),
            "max_rel_final_loss": max(losses, default=0.0),
            "max_rel_gap": max(gaps, default=0.0),
            "tuned_rates_differing": len(lrs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 1, 2])
    ap.add_argument("--pretrain-steps", type=int, default=50)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    prof = {"name": "thread-check", "steps": args.steps, "sgd_lrs": [0.1, 1.0],
            "adam_lrs": [1e-3, 1e-2], "seeds": [0], "batch_sizes": [8], "pool_size": 256,
            "eval_every": 10, "js_steps": 6, "js_probes": 2}
    runs = []
    for threads in args.threads:
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILD, str(threads), json.dumps(prof),
                                   str(args.pretrain_steps), cache], cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            runs.append({"threads": threads, "seconds": time.perf_counter() - t0,
                         "result": json.loads(done.stdout.strip().splitlines()[-1])})
    lines = [f"# Same settings, same numbers: the fine-tuning study at {args.threads} threads",
             "", f"Budget: {json.dumps(prof)}, pretraining {args.pretrain_steps} Adam steps; "
             "each run in a fresh interpreter with an empty cache. Load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings are under that "
             "load).", "",
             "| run | threads | seconds | gap B=8 scratch | gap B=8 fine-tune |",
             "|---|---|---|---|---|"]
    for i, r in enumerate(runs):
        st = r["result"]["study"]
        lines.append(f"| {i} | {r['threads']} | {r['seconds']:.0f} | "
                     f"{st['scratch']['gap']['8']!r} | {st['finetune']['gap']['8']!r} |")
    lines += ["", "| pair | same threads | bitwise equal | numbers differing | "
              "max rel. diff final loss | max rel. diff gap | tuned rates differing |",
              "|---|---|---|---|---|---|---|"]
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            c = compare(runs[i]["result"]["study"], runs[j]["result"]["study"])
            if not c["same_structure"]:
                lines.append(f"| {i}–{j} | | no (different structure) | | | | |")
                continue
            lines.append(f"| {i}–{j} | {runs[i]['threads'] == runs[j]['threads']} | "
                         f"{c['bitwise']} | {c['numbers_differing']} of {c['numbers']} | "
                         f"{c['max_rel_final_loss']:.2e} | {c['max_rel_gap']:.2e} | "
                         f"{c['tuned_rates_differing']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
