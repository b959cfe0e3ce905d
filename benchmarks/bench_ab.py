"""nets at two versions of its code, on cells of ``bench_peers.py``'s grid, in one run.

A change to the engine is judged by timing it against the code before it on the same machine,
in the same run. This script extracts ``--base`` (a git revision, default ``HEAD``) with
``git archive`` into a temporary directory and measures ``nets`` from there and from the
working tree (``head``, committed or not) on each cell, each run in a fresh process
(``runner.run_cell``: the same repeats and peak-memory accounting as the grid), the two
versions interleaved over ``--rounds`` rounds (their order alternating) so that a slow phase of
a shared machine falls on both. For each cell it reports the time and peak-rise ratios of
``head`` against ``base``, the time ratio with its interval over the runs.

    python benchmarks/bench_ab.py --base HEAD~1 --rounds 5 --out benchmarks/results/ab.md \\
        --json benchmarks/results/ab.json   # --cells gpt2-m:full:10:10,gpt:blocks:1:30

Both versions are driven by this checkout's scripts (``runner.run_cell``): only ``nets``
and ``labkit`` come from ``--base``, and each measuring process checks that it imported them
from where it was told.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

#: Environment variable naming the directory a measuring process imports ``nets`` and
#: ``labkit`` from (set by :func:`measure`).
CODE_ENV = "NETS_BENCH_CODE"
#: The packages a version consists of.
PACKAGES = ("nets", "labkit")

sys.path.insert(0, str(Path(__file__).resolve().parent))
if os.environ.get(CODE_ENV):  # a measuring process: that version's packages, imported first
    sys.path.insert(0, os.environ[CODE_ENV])
    for _name in PACKAGES:
        importlib.import_module(_name)

import problems  # noqa: E402
import reports  # noqa: E402
import runner  # noqa: E402
import verdicts  # noqa: E402

import nets  # noqa: E402
from labkit.atomic import atomic_write_bytes  # noqa: E402

MIB = 2**20
#: The versions compared: the working tree first, then the base.
VERSIONS = ("head", "base")
#: Cell kinds: ``bench_peers.py``'s spectra, and Lanczos alone (:func:`run_lanczos`).
KINDS = ("full", "blocks", "lanczos")
#: Cells (model, kind, probes, steps): both spectra on a large and a small model, and Lanczos
#: alone at the large model's dimension.
CELLS = (("gpt2-m", "full", 10, 10), ("gpt2-m", "full", 3, 30), ("gpt2-m", "blocks", 3, 10),
         ("gpt2-s", "blocks", 10, 10), ("gpt", "blocks", 1, 30), ("gpt2-m", "lanczos", 10, 10),
         ("gpt2-m", "lanczos", 3, 30))


def parse_cells(text: str) -> list[tuple[str, str, int, int]]:
    """``"gpt2-m:full:10:10,gpt:blocks:1:30"`` as ``[("gpt2-m", "full", 10, 10), ...]``.

    Raises:
        ValueError: An entry that is not ``model:kind:probes:steps`` with ``kind`` one of
            :data:`KINDS` and positive integers.
    """
    cells = []
    for part in text.split(","):
        fields = part.strip().split(":")
        try:
            model, kind, probes, steps = fields[0], fields[1], int(fields[2]), int(fields[3])
        except (IndexError, ValueError):
            model, kind, probes, steps = "", "", 0, 0
        if len(fields) != 4 or not model or kind not in KINDS or probes < 1 or steps < 1:
            raise ValueError(f"--cells entry {part!r}: expected MODEL:KIND:PROBES:STEPS with KIND "
                             f"one of {', '.join(KINDS)} and positive integers, e.g. --cells "
                             "gpt2-m:full:10:10,gpt:blocks:1:30")
        cells.append((model, kind, probes, steps))
    return cells


def cell_key(cell: dict) -> list:
    """``[model, kind, probes, steps, threads]`` of a cell (its rows' key)."""
    return [cell[k] for k in ("model", "kind", "probes", "steps", "threads")]


def run_lanczos(cell: dict) -> dict:
    """Lanczos alone (``nets.lanczos``, then ``nets.gauss_quadrature``) on a diagonal operator
    of the model's dimension and dtype with entries uniform in [0, 1), ``probes`` float32 start
    vectors and ``steps`` steps: the engine's arithmetic without the model's products. Timed
    and repeated by :func:`runner.repeat`, as :func:`runner.run_cell` times a spectrum; the
    same row fields."""
    load_avg = os.getloadavg()[0]
    torch.set_num_threads(cell["threads"])
    model = problems.load(cell["model"])[0]
    d = sum(p.numel() for p in model.parameters())
    dtype = next(model.parameters()).dtype
    g = torch.Generator().manual_seed(0)
    diagonal = torch.rand(d, generator=g, dtype=dtype)
    start = torch.randn(cell["probes"], d, generator=g, dtype=dtype)

    def matvec(vectors):
        return [None if v is None else v * diagonal for v in vectors]

    def once() -> dict:
        (run,) = nets.lanczos(matvec, [start], cell["steps"])
        nodes, _ = nets.gauss_quadrature(run)
        return {"top": {"full": float(nodes.max())}}

    done = runner.repeat(once, torch.device("cpu"))
    return {**cell, "load": load_avg, "seconds": float(np.median(done.runs)), "runs": done.runs,
            "peak_bytes": done.first_peak,
            "peak_extra_bytes": max(done.first_peak - done.before, 0),
            "peak_all_bytes": done.every_peak, "params": d, **done.extras[-1]}


def extract(rev: str, dest: Path) -> str:
    """Write ``rev``'s :data:`PACKAGES` under ``dest`` (``git archive``); its short hash.

    Raises:
        ValueError: ``rev`` is not a revision of this repository.
    """
    git = ["git", "-C", str(reports.ROOT)]
    p = subprocess.run([*git, "rev-parse", "--short", "--verify", f"{rev}^{{commit}}"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise ValueError(f"--base {rev!r} is not a commit of {reports.ROOT}: "
                         f"{p.stderr.strip()}")
    short = p.stdout.strip()
    archive = dest / "code.tar"
    with open(archive, "wb") as f:
        subprocess.run([*git, "archive", short, *PACKAGES], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    return short


def measure(cell: dict, code: Path) -> dict:
    """``cell`` measured in a fresh process importing ``nets`` and ``labkit`` from ``code``;
    its row (with ``nets_from``, the directory it imported ``nets`` from) or ``{"error": ...}``.
    """
    row = runner.measure_in(__file__, cell, env={**os.environ, CODE_ENV: str(code)})
    if "error" in row:
        return row
    if Path(row["nets_from"]) != code.resolve():
        return {"error": f"imported nets from {row['nets_from']}, not {code}"}
    return row


def render(pairs: list[tuple[dict, dict]], header: str) -> str:
    """The Markdown table: per cell, each version's row and head's ratios against base."""
    lines = [header, "", "| model | kind | P | k | threads | code | s | runs | +peak MiB | "
             "x time (spread) | not slower | rise / base | λmax rel. diff | load |",
             "|" + "---|" * 14]
    for new, old in pairs:
        for r in (new, old):
            cell = (f"| {r['model']} | {r['kind']} | {r['probes']} | {r['steps']} | "
                    f"{r['threads']} | {r['label']}")
            if "error" in r:
                lines.append(f"{cell} | failed: {r['error']} | | | | | | | |")
                continue
            ratio = " | | | "
            if r is new and "error" not in old:
                c = verdicts.paired_ratios(new, old)
                ratio = (f"{c['speed']:.2f} ({c['speed_lo']:.2f}-{c['speed_hi']:.2f}) | "
                         f"{c['speed_verdict']} | {c['memory']:.2f} | "
                         f"{verdicts.top_difference(new, old):.1e}")
            lines.append(f"{cell} | {r['seconds']:.2f} | {len(r['runs'])} | "
                         f"{r['peak_extra_bytes'] / MIB:.0f} | {ratio} | {r['load']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD", help="git revision to compare the working tree "
                    "with (default HEAD: the uncommitted change)")
    reports.add_round_options(ap, "versions")
    ap.add_argument("--threads", default="1", metavar="T1,T2",
                    help="torch thread counts, each cell measured at each (default 1)")
    ap.add_argument("--cells", default=None, metavar="MODEL:KIND:P:K,...",
                    help="cells to measure, e.g. gpt2-m:full:10:10,gpt:blocks:1:30 (a "
                         "problems.py model, full or blocks, probes, Lanczos steps; default: "
                         + ",".join(f"{m}:{k}:{p}:{s}" for m, k, p, s in CELLS) + ")")
    args = ap.parse_args(argv)
    if args.cell is not None:  # one measuring process
        cell = json.loads(args.cell)
        row = (run_lanczos if cell["kind"] == "lanczos" else runner.run_cell)(cell)
        print(json.dumps({**row, "nets_from": str(Path(nets.__file__).resolve().parent.parent)}))
        return
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        threads = [0]
    reports.check_round_options(ap, args)
    if min(threads) < 1:
        ap.error("--threads must be a list of positive integers (e.g. --threads 1,2)")
    try:
        cells = [(*c, t) for c in (CELLS if args.cells is None else parse_cells(args.cells))
                 for t in threads]
    except ValueError as e:
        ap.error(str(e))
    command = (f"--base {args.base} --rounds {args.rounds}"
               f"{f' --threads {args.threads}' if threads != [1] else ''}"
               f"{f' --cells {args.cells}' if args.cells else ''}")
    runs: dict[str, list[dict]] = {}
    saved, measured, rounds = None, reports.machine_note(), args.rounds
    if args.render_only:
        saved, cells, rounds = reports.saved_rounds(args.json)
        head, base, runs = saved["head"], saved["base"], saved["runs"]
        command = f"--render-only --json {args.json}"
    with (contextlib.nullcontext() if args.render_only
          else tempfile.TemporaryDirectory(prefix="bench-ab-")) as tmp:
        if not args.render_only:
            try:
                base = extract(args.base, Path(tmp))
            except ValueError as e:
                ap.error(str(e))
            head = reports.code_version(__file__)["commit"]
            codes = {"head": (reports.ROOT, head), "base": (Path(tmp), base)}
        for r in range(0 if args.render_only else rounds):
            for model, kind, probes, steps, n_threads in cells:
                for version in runner.round_order(VERSIONS, r):
                    code, label = codes[version]
                    cell = dict(model=model, kind=kind, probes=probes, steps=steps,
                                threads=n_threads, method="nets")
                    row = {**cell, **measure(cell, code), "label": label}
                    runs.setdefault(json.dumps([*cell_key(cell), version]), []).append(row)
                    print(f"round {r + 1} {model} {kind} P={probes} k={steps} "
                          f"threads={n_threads} {label}: "
                          + (row.get("error") or f"{row['seconds']:.2f} s, "
                             f"+{row['peak_extra_bytes'] / MIB:.0f} MiB"), flush=True)
                    if args.json:
                        atomic_write_bytes(Path(args.json), json.dumps(
                            {"head": head, "base": base, "command": command,
                             "measured": measured, "runs": runs}, indent=1).encode())
    pooled = {k: runner.pool_rounds(v) for k, v in runs.items()}
    pairs = [tuple(pooled[json.dumps([*c, v])] for v in VERSIONS) for c in cells]
    loads = [row["load"] for rows in runs.values() for row in rows if "load" in row]
    header = (f"# nets at {head} against {base}\n\n"
              + reports.generated_by("bench_ab.py", command, saved)
              + ", load "
              f"average {min(loads, default=0):.1f}-{max(loads, default=0):.1f} at the "
              f"processes' starts. {reports.rounds_note('version', rounds)} "
              f"`{head}` is the working tree "
              f"(`+changes`: with uncommitted changes), `{base}` the base's `nets` and `labkit` "
              "driven by the same scripts. `x time` is base time / head time, "
              f"{verdicts.INTERVAL_NOTE}; `not slower` is its verdict against 1; "
              "`rise / base` head's peak rise over base's; `λmax rel. diff` the largest "
              "difference of a block's largest Ritz value between the versions (last runs), "
              "relative to the largest: round-off where both compute the same spectra.")
    reports.publish(render(pairs, header), args.out, pooled.values())


if __name__ == "__main__":
    main()
