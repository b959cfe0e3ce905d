"""Memory against speed: nets' blockwise spectrum at several memory budgets, against
hessian-eigenthings one block at a time, in one run.

The issue's blockwise targets pull against each other: at least 2x hessian-eigenthings'
speed, with a peak memory rise at most 1.5x its rise. ``max_memory`` trades one for the other
(graphs kept across Lanczos steps or rebuilt, Lanczos vectors of all blocks at once or in
groups). This script measures that trade on one cell of ``bench_peers.py``'s grid: the peer
once, then nets at each budget, each method in its own process (``runner.py --cell``:
the same measurement, repeats and peak-memory accounting as the grid), and reports for each
budget the speed ratio, the memory ratio, both verdicts (``verdicts.verdict``: met,
MISSED or within noise over the repeated runs' interval) and which budgets meet both.

    python benchmarks/bench_memory.py --model gpt2-m --probes 3 --steps 10 \\
        --budgets default,least,24,16,12,8,4 --json benchmarks/results/memory-sweep.json --resume \\
        --out benchmarks/results/memory-sweep.md

Budgets are in MiB (``default``: nets' own, half the available memory; ``least``: the least
its products run in, one batch's graph and one tangent, and the Lanczos vectors' room beside
them, measured by nets). ``--measured`` names budgets (the same syntax) also run with
``measure_tangents=True``: the budget counts a stacked tangent as measured on the first batch
rather than by the graph bound, which may change how many graphs it keeps. ``--live`` runs
each nets row once more in its first round's process, untimed, counting its live tensors
(``runner.py``'s ``count_live``):
the column ``tensors MiB`` is their peak and its ratio to the budget, the measure the budget
bounds, beside the process's RSS rise, which also holds what the allocator and the libraries
keep. ``--json`` writes every row after each process and ``--resume`` keeps the rows the same
code measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reports
import runner
import verdicts

from labkit.atomic import atomic_write_bytes
from nets.studies.gpucheck import GPT_BLOCKS

MIB = 2**20
#: The issue's blockwise targets checked here: speed (higher is better) and memory.
SPEED_TARGET = 2.0
MEMORY_TARGET = 1.5


def parse_budgets(text: str) -> list[int | str | None]:
    """``"default,least,24,12"`` as ``[None, "least", 24 MiB, 12 MiB]`` (sizes in bytes;
    ``None``: nets' default, half the available memory; ``"least"``: the least its products
    run in, ``max_memory="least"``).

    Raises:
        ValueError: An entry that is neither ``default``, ``least`` nor a positive number of
            MiB.
    """
    out: list[int | str | None] = []
    for part in text.split(","):
        part = part.strip()
        if part in ("default", "least"):
            out.append(None if part == "default" else part)
            continue
        try:
            mib = float(part)
        except ValueError:
            mib = -1.0
        if not mib > 0:
            raise ValueError(f"--budgets entry {part!r}: expected 'default', 'least' or a "
                             "positive number of MiB, e.g. --budgets default,least,24,12")
        out.append(int(mib * MIB))
    if len(set(out)) != len(out):
        raise ValueError(f"--budgets {text!r} names a budget twice")
    return out


def trade(nets_row: dict, peer_row: dict) -> dict:
    """One budget's ratios against the peer and their verdicts.

    The speed ratio ``peer time / nets time`` has its interval over the runs
    (:func:`verdicts.speed_ratio`); the memory ratio (each row's largest rise) its spread over
    the rounds' rises (:func:`verdicts.memory_ratio`: none for one round).
    """
    speed, slo, shi = verdicts.speed_ratio(peer_row, nets_row)
    memory, mlo, mhi = verdicts.memory_ratio(nets_row, peer_row)
    speed_v = verdicts.verdict(speed, slo, shi, SPEED_TARGET, higher=True)
    memory_v = verdicts.verdict(memory, mlo, mhi, MEMORY_TARGET, higher=False)
    return {"speed": speed, "speed_lo": slo, "speed_hi": shi, "speed_verdict": speed_v,
            "memory": memory, "memory_lo": mlo, "memory_hi": mhi, "memory_verdict": memory_v,
            "both": speed_v == "met" and memory_v == "met"}


def _label(row: dict) -> str:
    """A row's budget as the report names it: ``default``, ``least`` (with the bytes it
    resolved to, once measured) or MiB, and whether its tangents were measured."""
    budget = row["max_memory"]
    name = ("default" if budget is None
            else f"least ({row['budget_bytes'] / MIB:.1f} MiB)"
            if budget == "least" and "budget_bytes" in row
            else budget if isinstance(budget, str) else f"{budget / MIB:g} MiB")
    return name + (", measured tangent" if row.get("measure_tangents") else "")


def render(rows: list[dict], peer: dict, header: str) -> str:
    """The Markdown report: one line per budget, the peer's line, the closing verdict.

    Args:
        rows: nets' rows, one per budget (``max_memory``; a failed run has ``error``).
        peer: hessian-eigenthings' row (or its ``error``: then no ratio and no verdict).
        header: The report's title and settings.
    """
    ok = "error" not in peer
    live = any("live_peak_bytes" in r for r in rows)  # --live: the tensors' column
    lines = [header, "", "| budget | s | +peak MiB | " + ("tensors MiB (/ budget) | " if live
                                                         else "")
             + "graphs | groups | tangent MiB | "
             f"x eigenthings (spread) | >= {SPEED_TARGET:g} | mem / eigenthings | "
             f"<= {MEMORY_TARGET:g} | both | load | commit |", "|" + "---|" * (13 + live)]
    gap = "| " if live else ""
    both = []
    # the least of the graph bound (a measured tangent's least is another: those rows are not
    # compared with this one); a fixed budget below it ran at it and is named so
    least = next((r["budget_bytes"] for r in rows if r["max_memory"] == "least"
                  and "budget_bytes" in r and not r.get("measure_tangents")), None)

    def below_least(r: dict) -> bool:
        return (least is not None and isinstance(r["max_memory"], int)
                and r["max_memory"] < least and not r.get("measure_tangents"))

    under = [r for r in rows if below_least(r)]
    for r in rows:
        b = _label(r) + (" (ran at the least)" if below_least(r) and "error" not in r else "")
        if "error" in r:
            lines.append(f"| {b} | failed | | {gap}| | | | | | | | | {r['error']} |")
            continue
        t = trade(r, peer) if ok else None
        ratios = (f"{verdicts.with_spread(t['speed'], t['speed_lo'], t['speed_hi'])} | "
                  f"{t['speed_verdict']} | "
                  f"{verdicts.with_spread(t['memory'], t['memory_lo'], t['memory_hi'])} | "
                  f"{t['memory_verdict']} | {'yes' if t['both'] else 'no'}") if t else "| | | |"
        if t and t["both"]:
            both.append(b)
        tangent = (f"{r['tangent_bytes'] / MIB:.1f} ({r['tangent_estimate']})"
                   if r.get("tangent_bytes") else "")
        tensors = (f"{_tensors(r)} | " if live else "")
        lines.append(f"| {b} | {r['seconds']:.2f} | {r['peak_extra_bytes'] / MIB:.0f} | "
                     f"{tensors}{r['graphs']} | {r.get('groups', '')} | {tangent} | {ratios} | "
                     f"{r['load']:.1f} | {r.get('commit', '?')} |")
    if ok:
        lines.append(f"| eigenthings | {peer['seconds']:.2f} | "
                     f"{peer['peak_extra_bytes'] / MIB:.0f} | {gap}one block at a time | | | | "
                     f"| | | | {peer['load']:.1f} | {peer.get('commit', '?')} |")
    else:
        lines.append(f"| eigenthings | failed | | {gap}| | | | | | | | | "
                     f"{peer['error']} |")
    if under:
        lines += ["", f"The least nets runs in on this cell (one batch's graph, one tangent and "
                  f"the Lanczos vectors' room, the `least` row's budget) is "
                  f"{least / MIB:.1f} MiB. Below it ({', '.join(map(_label, under))}) nets ran "
                  "at that least, over the budget (with a warning)."]
    lines += ["", ("Budgets meeting both targets: " + ", ".join(both) + "." if both else
                   "No budget meets both targets on this cell." if ok
                   else "No verdict: the peer did not run.")]
    return "\n".join(lines) + "\n"


def _tensors(row: dict) -> str:
    """A row's live tensors' peak (MiB) and its ratio to the budget it ran under, or blank."""
    if "live_peak_bytes" not in row:
        return ""
    mib = f"{row['live_peak_bytes'] / MIB:.1f}"
    budget = row.get("budget_bytes")
    return f"{mib} ({row['live_peak_bytes'] / budget:.2f})" if budget else mib


def _key(row: dict) -> str:
    return json.dumps([row.get("method"), row.get("max_memory"),
                       bool(row.get("measure_tangents"))])


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gpt2-m", help="a model of problems.load")
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (the GPU check's sweep)")
    ap.add_argument("--blocks", default=None,
                    help="the blocks, comma-separated parameter names (default: every "
                         "parameter its own block), or 'gpu-check' for the first layer's "
                         "matrices that `nets gpu-check` and bench_peers' gpu grid use")
    ap.add_argument("--budgets", default="default,least,24,16,12,10,8",
                    help="nets' max_memory values in MiB, comma-separated ('default': its own, "
                         "'least': the least its products run in)")
    ap.add_argument("--measured", default=None, metavar="BUDGETS",
                    help="budgets (the same syntax) also run with measure_tangents=True: a "
                         "stacked tangent counted as measured on the first batch, not by the "
                         "graph bound")
    ap.add_argument("--out", default=None, help="Markdown report (default: print only)")
    ap.add_argument("--json", default=None, help="also write the rows (JSON) after each one")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows of --json that the same code measured for this cell")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every row in this many fresh processes, the rows "
                         "interleaved (order alternating by round); the runs are pooled, so "
                         "the speed ratio's spread spans the rounds")
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: write the report from the rows of --json (with "
                         "--resume), whatever code measured them (each row names its commit)")
    ap.add_argument("--live", action="store_true",
                    help="also count each nets row's live tensors in one more, untimed run "
                         "(the budget's own measure; several times slower)")
    ap.add_argument("--in-process", action="store_true",
                    help="run every method in this process (the test's mode; the memory "
                         "columns are then the whole process's rises, not each method's)")
    args = ap.parse_args(argv)
    try:
        budgets = parse_budgets(args.budgets)
        measured_budgets = [] if args.measured is None else parse_budgets(args.measured)
    except ValueError as e:
        ap.error(str(e))
    if args.resume and not args.json:
        ap.error("--resume needs --json (the file the rows are read from)")
    if args.render_only and not args.resume:
        ap.error("--render-only needs --resume and --json (the rows to write the report from)")
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    cell = dict(model=args.model, kind="blocks", probes=args.probes, steps=args.steps,
                threads=args.threads)
    if args.device != "cpu":
        cell["device"] = args.device
    if args.blocks:
        cell["block_names"] = (list(GPT_BLOCKS) if args.blocks == "gpu-check"
                               else [b.strip() for b in args.blocks.split(",") if b.strip()])
    version = reports.code_version(__file__)
    kept: dict[str, dict] = {}
    if args.resume and Path(args.json).exists():
        old = reports.read_json(args.json, "resume from")
        # (--render-only reports what the file holds, a failed row included)
        kept = {_key(r): r for r in old if isinstance(r, dict)
                and ("error" not in r or args.render_only)
                and (args.render_only or reports.reusable(r, version["code"], args.rounds))
                and all(r.get(k) == v for k, v in cell.items())
                and not (args.live and r.get("method") == "nets" and "live_peak_bytes" not in r)}
    # the peer first, then nets at each budget, then at each measured-tangent budget
    plan = [{**cell, "method": "eigenthings", "max_memory": None},
            *({**cell, "method": "nets", "max_memory": b} for b in budgets),
            *({**cell, "method": "nets", "max_memory": b, "measure_tangents": True}
              for b in measured_budgets)]
    rows: dict[str, dict] = {}
    reused: list[str] = []
    todo = []
    for run in plan:
        if _key(run) in kept:
            rows[_key(run)] = kept[_key(run)]
            reused.append(_key(run))
        else:
            todo.append(run)
    if args.render_only and todo:
        ap.error(f"--render-only: {args.json} has no row for "
                 + ", ".join(f"{r['method']} {_label(r)}" for r in todo))
    # rounds interleave the rows (their order alternating): a slow phase of the machine then
    # falls on every budget and on the peer rather than on one of them
    measured: dict[str, list[dict]] = {_key(run): [] for run in todo}
    for r in range(args.rounds if todo else 0):
        for run in runner.round_order(todo, r):
            # --live: the first round's process of each nets row also counts its tensors
            live = args.live and r == 0 and run["method"] == "nets"
            res = runner.measure({**run, "count_live": True} if live else run,
                                 in_process=args.in_process)
            measured[_key(run)].append(res)
            print(f"{run['method']} {_label(run)}: " + (
                res.get("error") or f"{res['seconds']:.2f} s, "
                f"+{res['peak_extra_bytes'] / MIB:.0f} MiB"), flush=True)
        for run in todo:  # a row is kept by --resume only once it has every round
            res = runner.pool_rounds(measured[_key(run)])
            rows[_key(run)] = {**run, **res, **({} if "error" in res else version)}
        if args.json and todo:
            atomic_write_bytes(Path(args.json), json.dumps(list(rows.values()), indent=1)
                               .encode())
    peer, *nets_rows = (rows[_key(run)] for run in plan)
    header = (f"# Memory against speed: nets' blockwise spectrum by memory budget\n\n"
              f"Generated by `benchmarks/bench_memory.py --model {args.model} --probes "
              f"{args.probes} --steps {args.steps} --threads {args.threads}"
              + (f" --device {args.device}" if args.device != "cpu" else "")
              + (f" --blocks {args.blocks}" if args.blocks else "")
              + f" --budgets {args.budgets}"
              + (f" --measured {args.measured}" if args.measured else "")
              + (" --live" if args.live else "")
              + (f" --rounds {args.rounds}" if args.rounds > 1 else "")
              + (f" --json {args.json} --resume --render-only" if args.render_only else "")
              + f"` on {reports.machine_note()}, code "
              + (", ".join(sorted({str(r["commit"]) for r in rows.values() if "commit" in r}))
                 if args.render_only else version["commit"]) + ". "
              + "Each row in its own process (`runner.py --cell`)"
              + (f", in {args.rounds} rounds of fresh processes, the rows interleaved (order "
                 f"alternating by round)" if args.rounds > 1 else "")
              + f": wall seconds of spectrum + densities (the median of all its runs; a run "
              f"under {runner.REPEAT_BELOW:g} s is repeated to {runner.REPEATS} in "
              f"its process), `+peak` the largest rise of the process's peak memory (RSS; on "
              f"a GPU the allocator's peak) during its first run over the rounds."
              + " `graphs` is how nets held the gradient graphs, `groups` in how many groups "
              "of blocks its Lanczos vectors ran, `tangent MiB` the bytes its budget counted "
              "per stacked tangent (the graph bound or measured)"
              + ("; `tensors MiB` the most bytes of tensors alive at once in one more, untimed "
                 "run of the row in its first round (`nets.engine.memory.LiveBytes`, the "
                 "budget's own measure) "
                 "and its ratio to the budget the row resolved to" if args.live else "")
              + "; for the speed ratio, "
              f"{verdicts.INTERVAL_NOTE}; for the memory ratio (of the largest rises), "
              f"{verdicts.MEMORY_INTERVAL_NOTE}; a target inside "
              "an interval is `within noise`. Targets: "
              f"x eigenthings >= {SPEED_TARGET:g} with a rise <= {MEMORY_TARGET:g}x "
              f"eigenthings' (its one-block-at-a-time run)."
              + (f" Rendered by code {version['commit']} from the rows of {args.json} "
                 "(--render-only: nothing measured by this command; each row's commit column "
                 "names the code that measured it)." if args.render_only else
                 f" Resumed: {len(reused)} of the {len(plan)} rows were read from "
                 f"{args.json}, measured earlier by the same code (their load column says "
                 "under what load)." if reused else ""))
    text = render(nets_rows, peer, header)
    print(text, end="")
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())


if __name__ == "__main__":
    main()
