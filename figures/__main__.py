"""`python -m figures`: regenerate the figures (for now the quadratic study, Figure 8)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quadlab import DEFAULT_OPTIMIZERS, run_study
from quadlab.cli import show_sweep
from quadlab.progress import Progress

from . import fig8_quadratic

OUT = Path(__file__).resolve().parent / "out"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m figures", description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60_000)
    args = ap.parse_args(argv)
    cases = ("hetero", "homo", "transformer", "cnn")
    seeds = tuple(range(args.seeds))
    with Progress(len(cases) * len(seeds) * len(DEFAULT_OPTIMIZERS), "figure 8") as bar:
        result = run_study(cases=cases, seeds=seeds, steps=args.steps, progress=bar.advance)
    print(show_sweep(result.summary()))
    paths = fig8_quadratic.plot(result, args.out)
    print("\nwrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
