"""`python -m figures`: regenerate every figure and table, with a report a reader can check.

Intermediate results are cached on disk, keyed by settings and code version, so a second run
only redraws. Profiles: ``quick`` (default, CPU, minutes) and ``full`` (GPU-sized).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from labkit.cache import load_or_compute
from labkit.interrupts import run_interruptible
from labkit.progress import Progress
from labkit.records import dataclasses_in

from . import report
from .registry import PROFILES
from .specs import FIGURES

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CACHE = HERE / ".cache"
REPORT = HERE / "REPORT.md"


def run_figures(names, *, profile: str, out: Path, cache_dir: Path | None,
                stream=None, threads: int | None = None) -> list[report.Entry]:
    """Compute (or read from cache), draw and assess the named figures; print each finding.

    Every figure runs with torch's CPU thread count set to ``threads`` (default: the count at
    the call), set again before each figure and restored after it: numba's OpenMP layer (the
    quadlab figures) resets the calling thread's OpenMP count, which torch reads, to the number
    of cores at every parallel launch, and a training run is reproducible bitwise only for a
    given thread count. The count is part of each figure's cache key.
    """
    stream = sys.stdout if stream is None else stream
    threads = torch.get_num_threads() if threads is None else threads
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    entries = []
    for name in names:
        spec = FIGURES[name]
        settings = spec.settings_for(profile)
        t0 = time.monotonic()
        torch.set_num_threads(threads)
        with Progress(None, name) as bar:
            def compute(spec=spec, settings=settings, bar=bar):
                return spec.compute(**settings, progress=bar.advance)

            if cache_dir is None:
                result, hit = compute(), False
            else:
                result, hit = load_or_compute(
                    name, {**settings, "torch_threads": threads}, compute,
                    directory=cache_dir, modules=(*spec.packages, spec.compute.__module__),
                    types=dataclasses_in((*spec.packages, "figures")))
        torch.set_num_threads(threads)
        paths = spec.draw(result, out)
        finding = spec.findings(result)
        entries.append(report.Entry(spec, profile, settings, tuple(paths), finding,
                                    time.monotonic() - t0, hit))
        print(f"\n== {spec.title} [{finding.verdict}]"
              f"{' (cached)' if hit else ''}\n{finding.measured}\n", file=stream)
        if finding.table:
            print(finding.table, file=stream)
    return entries


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m figures", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=PROFILES, default="quick")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=list(FIGURES),
                    help=f"figures to make (default all): {', '.join(FIGURES)}")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"cache folder (default {CACHE})")
    ap.add_argument("--no-cache", action="store_true", help="recompute everything")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1): training runs are reproducible "
                         "bitwise for a seed and a thread count, and cached under both")
    ap.add_argument("--check", action="store_true",
                    help="only say whether the report is up to date with the sources (exit 1 "
                         "if stale)")
    ap.add_argument("--report", type=Path, default=None,
                    help=f"report path (default {REPORT} for the default --out, else "
                         "OUT/REPORT.md)")
    args = ap.parse_args(argv)
    if args.check:
        fresh, message = report.check(args.report or REPORT)
        print(message)
        return 0 if fresh else 1
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    cache_note = ("nothing is cached (--no-cache)" if args.no_cache else
                  f"finished figures are cached in {args.cache}; rerun the same command to "
                  "continue from them")
    return run_interruptible(lambda: _run(args), prog="python -m figures", saved=cache_note)


def _run(args: argparse.Namespace) -> int:
    names = args.only or list(FIGURES)
    entries = run_figures(names, profile=args.profile, out=args.out,
                          cache_dir=None if args.no_cache else args.cache, threads=args.threads)
    path = args.report or (REPORT if args.out == OUT else args.out / "REPORT.md")
    report.write(entries, path)
    print(f"wrote {len(entries)} figure(s) to {args.out} and the report to {path}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
