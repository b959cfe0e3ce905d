"""Lanczos groups of a blockwise spectrum: groups of up to half the kept graphs' size (nets'
rule) against one block per group, in one run.

With every gradient graph kept and the default budget, nets packs whole blocks into Lanczos
groups whose stored vectors take up to half the kept graphs' bytes (``LEAN_SHARE``)
(:meth:`nets.engine.hvp.BlockHVP.vector_budget`'s ``lean``). With block-restricted products
(``reverse-block``, the only mode ``auto`` tries from 8 blocks on) the products are one double
backward per block whatever the group, so one block per group gives the same products and
holds only one block's vectors in flight, at the price of more, smaller operator calls. This
script measures both rules on cells of ``bench_peers.py``'s models, each run in a fresh
process (``runner.run_cell``: the same repeats and peak-memory accounting as the grid),
the two rules interleaved over ``--rounds`` rounds (their order alternating) so that a slow
phase of a shared machine falls on both, and reports for each cell the time and peak-rise
ratios of one block per group against nets' rule, the time ratio with its interval.

    python benchmarks/bench_groups.py --rounds 5 --out benchmarks/results/groups.md \\
        --json benchmarks/results/groups.json   # --cells gpt2-m:3:10,gpt:1:30 for others

The one-block rule is applied by wrapping ``vector_budget`` in the measuring process
(``--cell``), nowhere else.
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
from nets.engine.hvp import BlockHVP
from nets.engine.modes import ZERO_PADDED_MAX_BLOCKS

MIB = 2**20
#: The grouping rules compared: the alternative first, then nets' own.
RULES = ("one-block", "graph-sized")
#: Cells (model, probes, steps), one thread: a large and a small model, few and many probes.
CELLS = (("gpt2-m", 3, 10), ("gpt", 1, 30), ("gpt2-s", 10, 10), ("gpt2-s", 3, 30))


def parse_cells(text: str) -> list[tuple[str, int, int]]:
    """``"gpt2-m:3:10,gpt:1:30"`` as ``[("gpt2-m", 3, 10), ("gpt", 1, 30)]``.

    Raises:
        ValueError: An entry that is not ``model:probes:steps`` with positive integers.
    """
    cells = []
    for part in text.split(","):
        fields = part.strip().split(":")
        try:
            model, probes, steps = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            model, probes, steps = "", 0, 0
        if len(fields) != 3 or not model or probes < 1 or steps < 1:
            raise ValueError(f"--cells entry {part!r}: expected MODEL:PROBES:STEPS with positive "
                             "integers, e.g. --cells gpt2-m:3:10,gpt:1:30")
        cells.append((model, probes, steps))
    return cells


def use_one_block_groups() -> None:
    """Make this process's operators run each block as a Lanczos group of its own where the
    products are block-restricted and every graph is kept (nets would pack blocks up to half
    the kept graphs' bytes there)."""
    own = BlockHVP.vector_budget

    def vector_budget(self: BlockHVP) -> tuple[int, int | None]:
        limit, lean = own(self)
        strategy = self._strategy()[0] if self.graph_bytes else "unknown"
        block_products = self.mode == "reverse-block" or (
            self.mode is None and len(self.blocks) >= ZERO_PADDED_MAX_BLOCKS)
        return limit, (0 if strategy == "keep-all" and block_products else lean)

    BlockHVP.vector_budget = vector_budget


def measure(cell: dict) -> dict:
    """``cell`` (with its ``rule``) in a fresh process; its row or ``{"error": ...}``."""
    return runner.measure_in(__file__, cell)


#: The rules' ratios on one cell (one block per group against nets' rule).
compare = verdicts.paired_ratios


def render(pairs: list[tuple[dict, dict]], header: str) -> str:
    """The Markdown table: per cell, each rule's row and the ratios of one block per group
    against nets' rule."""
    lines = [header, "", "| model | P | k | rule | groups | s | runs | +peak MiB | "
             "x time (spread) | not slower | rise / nets | load |", "|" + "---|" * 12]
    for new, old in pairs:
        for r in (new, old):
            if "error" in r:
                lines.append(f"| {r['model']} | {r['probes']} | {r['steps']} | {r['rule']} | "
                             f"failed: {r['error']} | | | | | | | |")
                continue
            ratio = ""
            if r is new and "error" not in old:
                c = compare(new, old)
                ratio = (f"{c['speed']:.2f} ({c['speed_lo']:.2f}-{c['speed_hi']:.2f}) | "
                         f"{c['speed_verdict']} | {c['memory']:.2f}")
            else:
                ratio = " | | "
            lines.append(f"| {r['model']} | {r['probes']} | {r['steps']} | {r['rule']} | "
                         f"{r['groups']} | {r['seconds']:.2f} | {len(r['runs'])} | "
                         f"{r['peak_extra_bytes'] / MIB:.0f} | {ratio} | {r['load']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    reports.add_round_options(ap, "rules")
    ap.add_argument("--cells", default=None, metavar="MODEL:P:K,...",
                    help="cells to measure, e.g. gpt2-m:3:10,gpt:1:30 (a problems.py model, "
                         "probes, Lanczos steps; default: " + ",".join(
                             f"{m}:{p}:{k}" for m, p, k in CELLS) + ")")
    args = ap.parse_args(argv)
    if args.cell is not None:  # one measuring process
        cell = json.loads(args.cell)
        if cell["rule"] == "one-block":
            use_one_block_groups()
        print(json.dumps(runner.run_cell(cell)))
        return
    reports.check_round_options(ap, args)
    try:
        cells = CELLS if args.cells is None else parse_cells(args.cells)
    except ValueError as e:
        ap.error(str(e))
    version = reports.code_version(__file__)
    runs: dict[str, list[dict]] = {}
    command = f"--rounds {args.rounds}" + (f" --cells {args.cells}" if args.cells else "")
    saved, measured, rounds = None, reports.machine_note(), args.rounds
    if args.render_only:
        saved, cells, rounds = reports.saved_rounds(args.json)
        version, runs = saved["version"], saved["runs"]
        command = f"--render-only --json {args.json}"
    for r in range(0 if args.render_only else rounds):
        for model, probes, steps in cells:
            for rule in runner.round_order(RULES, r):
                cell = dict(model=model, kind="blocks", probes=probes, steps=steps, threads=1,
                            method="nets", rule=rule)
                row = {**cell, **measure(cell)}
                runs.setdefault(json.dumps([model, probes, steps, rule]), []).append(row)
                print(f"round {r + 1} {model} P={probes} k={steps} {rule}: "
                      + (row.get("error") or f"{row['seconds']:.2f} s, "
                         f"+{row['peak_extra_bytes'] / MIB:.0f} MiB, {row['groups']} groups"),
                      flush=True)
                if args.json:
                    atomic_write_bytes(Path(args.json), json.dumps(
                        {"version": version, "command": command, "measured": measured,
                         "runs": runs}, indent=1).encode())
    pooled = {k: runner.pool_rounds(v) for k, v in runs.items()}
    pairs = [tuple(pooled[json.dumps([m, p, k, rule])] for rule in RULES)
             for m, p, k in cells]
    loads = [row["load"] for rows in runs.values() for row in rows]
    header = ("# Lanczos groups: graph-sized groups (nets) against one block per group\n\n"
              + reports.generated_by("bench_groups.py", command, saved)
              + f", code {version['commit']}, one "
              f"thread, load average {min(loads):.1f}-{max(loads):.1f} at the processes' "
              f"starts. {reports.rounds_note('rule', rounds)} `graph-sized` is nets' rule "
              "(with every graph kept and the default budget, whole blocks packed into Lanczos "
              "groups until their stored vectors take half the kept graphs' bytes), "
              "`one-block` the alternative (each block a group of its own where the products are "
              "block-restricted). `x time` is graph-sized time / one-block time, "
              f"{verdicts.INTERVAL_NOTE}; `not slower` is its verdict against 1; "
              "`rise / nets` the one-block peak rise over nets'.")
    reports.publish(render(pairs, header), args.out, pooled.values())


if __name__ == "__main__":
    main()
