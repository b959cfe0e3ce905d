"""Forward-over-reverse against the double backward, by number of tangents: the measurement
behind ``auto``'s rule for when to try forward-over-reverse.

``nets.BlockHVP(mode="auto")`` times the product modes on the first batch and keeps the
fastest. Forward-over-reverse (``torch.func``: ``vmap`` over ``jvp`` of ``grad``) costs more
than a double backward with few tangents and pays one-time costs on its first call in a
process (``torch.func``'s set-up, the allocator's first growth to the stacked tangents'
size). This script measures, per model and tangent count ``T`` (one full-Hessian block, the
model's first batch, one thread), each mode's **first** call (a fresh operator: what a
calibration would time) and its **warm** call (the mean of ``--repeats`` later calls: what a
run pays per Lanczos step), and reports the ratio forward / reverse-block of the warm calls
and the smallest ``T`` at which forward-over-reverse is the faster warm (``crossover``).
``nets.engine.modes.FORWARD_MIN_TANGENTS_CPU`` is chosen from this report.

``--compile`` times a third product, forward-over-reverse compiled by ``torch.compile``
(``nets.BlockHVP(compile=True)``): its first call includes the compilation. It pays where its
warm call beats the faster of the two eager ones; ``break-even`` is then the number of calls
``n`` from which ``n`` compiled calls (the first one compiling) take no longer than ``n``
calls of the faster eager mode (its first included): the smallest ``n ≥ 1`` with
``c₁ + (n − 1) c ≤ e₁ + (n − 1) e``. A Lanczos run of ``k`` steps makes ``k`` calls per
group of blocks, so compiling pays on runs longer than that. Every tangent count is another
shape, so another compilation; every compilation starts cold (Inductor's caches off:
``torch._inductor.config.force_disable_caches``), as a user's first run in a fresh
environment would. A process compiles a shape once: ``next operator's first ms`` is the first
call of a second compiled operator on the same model and tangents (a study computing many
spectra of one model in one process pays the compilation once).

Each model runs in a fresh process (``--model``), so every model's first forward call pays
``torch.func``'s set-up, as a user's first call would. Both modes' products are checked to
agree before they are timed.

Run:  .venv/bin/python benchmarks/bench_modes.py [--models gpt gpt2-s gpt2-m]
      [--tangents 8 16 32 64 128] [--compile] [--out benchmarks/results/modes.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch._inductor.config as inductor_config

sys.path.insert(0, str(Path(__file__).resolve().parent))

import meters
import problems
import reports
import runner
from verdicts import check_same

import nets
from labkit.atomic import atomic_write_bytes
from labkit.tables import format_table

COLUMNS = [("model", "model", ""), ("params", "parameters", ""), ("T", "T", ""),
           ("forward_first_ms", "forward first ms", ".1f"),
           ("forward_ms", "forward warm ms", ".1f"),
           ("reverse_first_ms", "reverse-block first ms", ".1f"),
           ("reverse_ms", "reverse-block warm ms", ".1f"),
           ("warm_ratio", "forward / reverse-block warm", ".2f"),
           ("first_ratio", "forward / reverse-block first", ".2f")]
#: the columns ``--compile`` adds
COMPILED_COLUMNS = [("compiled_first_ms", "compiled first ms (compiling)", ".1f"),
                    ("compiled_ms", "compiled warm ms", ".1f"),
                    ("compiled_next_ms", "next operator's first ms", ".1f"),
                    ("compiled_ratio", "compiled / best eager warm", ".2f"),
                    ("break_even", "break-even calls", "")]


def measure(name: str, tangents: list[int], repeats: int, device: str = "cpu",
            compile: bool = False) -> list[dict]:
    """The rows of one model (in this process, on ``device``): one per tangent count; with
    ``compile``, the compiled forward-over-reverse product timed too."""
    dev = torch.device(device)
    model, loss_fn, data = problems.load(name, dev)
    block = [nets.full_block(model)]
    gen = torch.Generator().manual_seed(0)
    rows = []
    # cold compilations (see the docstring), not another run's cached kernels; the setting
    # is this measurement's only (the tests run it in their own process)
    with inductor_config.patch(force_disable_caches=compile):
        for t in tangents:
            try:
                rows.append(_measure_count(model, loss_fn, data, block, name, t, gen, repeats,
                                           dev, compile))
            except torch.OutOfMemoryError:  # this count and larger ones do not fit
                rows.append({"model": name, "params": block[0].dim, "T": t,
                             "error": "out of memory"})
                break
    return derive(rows)


def _measure_count(model, loss_fn, data, block, name: str, t: int, gen: torch.Generator,
                   repeats: int, dev: torch.device, compile: bool = False) -> dict:
    """One model's row at ``t`` tangents: both modes (and with ``compile`` the compiled
    forward product) timed, their products checked to agree."""
    dim, dtype = block[0].dim, next(model.parameters()).dtype
    v = [torch.randn(t, dim, generator=gen, dtype=dtype).to(dev)]
    row: dict = {"model": name, "params": dim, "T": t}
    out = {}
    modes = [("forward", "forward", False), ("reverse-block", "reverse", False)]
    for mode, key, compiled in modes + ([("forward", "compiled", True)] if compile else []):
        op = nets.BlockHVP(model, loss_fn, data[:1], block, mode=mode, compile=compiled)
        t0 = time.perf_counter()
        out[key] = op(v)[0]
        meters.synchronize(dev)
        row[f"{key}_first_ms"] = 1e3 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(repeats):
            op(v)
        meters.synchronize(dev)
        row[f"{key}_ms"] = 1e3 * (time.perf_counter() - t0) / repeats
    check_same([out["reverse"]], [out["forward"]], f"{name} T={t}: forward")
    if compile:
        check_same([out["reverse"]], [out["compiled"]], f"{name} T={t}: compiled forward")
        # a second operator on the same model and shapes reuses the compiled product
        op = nets.BlockHVP(model, loss_fn, data[:1], block, mode="forward", compile=True)
        t0 = time.perf_counter()
        op(v)
        meters.synchronize(dev)
        row["compiled_next_ms"] = 1e3 * (time.perf_counter() - t0)
    return row


def derive(rows: list[dict]) -> list[dict]:
    """Add the ratios forward / reverse-block (warm and first calls) to the timed rows (a row
    with an ``error`` is left as it is)."""
    for r in rows:
        if "error" in r:
            continue
        r["warm_ratio"] = r["forward_ms"] / r["reverse_ms"]
        r["first_ratio"] = r["forward_first_ms"] / r["reverse_first_ms"]
        if "compiled_ms" in r:
            eager = "forward" if r["forward_ms"] < r["reverse_ms"] else "reverse"
            r["compiled_ratio"] = r["compiled_ms"] / r[f"{eager}_ms"]
            r["break_even"] = break_even(r["compiled_first_ms"], r["compiled_ms"],
                                         r[f"{eager}_first_ms"], r[f"{eager}_ms"])
    return rows


def break_even(first: float, warm: float, eager_first: float, eager_warm: float) -> int | str:
    """The smallest number of calls ``n ≥ 1`` from which on ``n`` calls of a product whose
    first call takes ``first`` and later ones ``warm`` take no longer than ``n`` calls of the
    eager product (``eager_first``, ``eager_warm``): ``first + (n − 1) warm ≤ eager_first +
    (n − 1) eager_warm`` at ``n`` and every larger count; ``"never"`` where the warm call is
    not faster (a long run then loses whatever the first calls took)."""
    if warm >= eager_warm:
        return "never"
    return 1 + max(0, math.ceil((first - eager_first) / (eager_warm - warm)))


def crossover(rows: list[dict]) -> dict[str, int | None]:
    """Per model, the smallest tangent count from which forward-over-reverse is the faster
    warm product at that count and every larger one measured (``None``: never; rows with an
    ``error`` are not measurements)."""
    out: dict[str, int | None] = {}
    timed = [r for r in rows if "error" not in r]
    for model in dict.fromkeys(r["model"] for r in timed):
        mine = sorted((r for r in timed if r["model"] == model), key=lambda r: r["T"])
        first = None
        for r in reversed(mine):
            if r["warm_ratio"] >= 1.0:
                break
            first = r["T"]
        out[model] = first
    return out


def _compiled_summary(rows: list[dict]) -> str:
    """The report's line on the compiled product: per model, the tangent counts at which its
    warm call beats the faster eager one, with the calls after which it pays."""
    out = []
    timed = [r for r in rows if "compiled_ms" in r]
    for model in dict.fromkeys(r["model"] for r in timed):
        pays = [f"T = {r['T']} after {r['break_even']} calls" for r in timed
                if r["model"] == model and r["break_even"] != "never"]
        out.append(f"{model}: " + (", ".join(pays) if pays else "at no tangent count"))
    return ("\nCompiled forward-over-reverse is faster warm than the faster eager mode: "
            + "; ".join(out) + ".")


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["gpt", "gpt2-s", "gpt2-m"])
    ap.add_argument("--tangents", nargs="+", type=int, default=[8, 16, 32, 64, 128])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu",
                    help="where the model and products are (default cpu; cuda on a GPU: the "
                         "measurement behind FORWARD_MIN_TANGENTS, make gpu-check)")
    ap.add_argument("--compile", action="store_true",
                    help="also time forward-over-reverse compiled by torch.compile (its first "
                         "call compiling) and the calls after which it pays")
    ap.add_argument("--out", default=None, help="Markdown report (default: print only)")
    ap.add_argument("--in-process", action="store_true",
                    help="measure every model in this process (the tests' mode; only the "
                         "first model's first forward call then pays torch.func's set-up)")
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)  # one model, JSON out
    args = ap.parse_args(argv)
    if any(t < 1 for t in args.tangents) or args.repeats < 1:
        ap.error("--tangents and --repeats must be positive")
    tangents = sorted(set(args.tangents))
    with meters.torch_threads(args.threads):
        if args.model is not None:
            print(json.dumps(measure(args.model, tangents, args.repeats, args.device,
                                     args.compile)))
            return
        load0 = os.getloadavg()[0]
        rows = runner.each_model(  # measure()'s rows, derived there
            __file__, args.models, lambda m: [
                "--model", m, "--tangents", *map(str, tangents), "--repeats",
                str(args.repeats), "--threads", str(args.threads), "--device", args.device,
                *(["--compile"] if args.compile else [])],
            lambda m: measure(m, tangents, args.repeats, args.device, args.compile),
            in_process=args.in_process, failed=lambda m, e: {"model": m, "T": "all", "error": e})
    cross = crossover(rows)
    version = reports.code_version(__file__)
    text = "\n".join([
        "# Forward-over-reverse against the double backward, by number of tangents", "",
        f"Generated by `benchmarks/bench_modes.py --models {' '.join(args.models)} "
        f"--tangents {' '.join(map(str, tangents))} "
        f"--repeats {args.repeats} --threads {args.threads} --device {args.device}"
        f"{' --compile' if args.compile else ''}` at "
        f"{version['commit']} on {reports.machine_note(args.device)}; "
        f"load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end. One full-Hessian block, the model's first "
        "batch; `first` is a fresh operator's first call (what `auto`'s calibration times), "
        "`warm` the mean of the later calls (what a Lanczos step pays); "
        + ("every model in its own process. " if not args.in_process else
           "every model in one process (--in-process). ")
        + "Definitions: the script's docstring.", "",
        format_table([r for r in rows if "error" not in r],
                     COLUMNS + (COMPILED_COLUMNS if args.compile else []), markdown=True), "",
        "Smallest tangent count from which forward-over-reverse is the faster warm product "
        "(at it and every larger count measured): "
        + "; ".join(f"{m}: {'never' if t is None else t}" for m, t in cross.items()) + "."
        + (_compiled_summary(rows) if args.compile else "")
        + "".join(f"\nNot measured: {r['model']} at T = {r['T']}: {r['error']}."
                  for r in rows if "error" in r)])
    print(text, flush=True)
    if args.out:
        atomic_write_bytes(Path(args.out), (text + "\n").encode())


if __name__ == "__main__":
    main()
