"""`python -m figures`: regenerate the figures (default: the quadratic study, Figure 8).

`--only newton eps batch` draws the noisy-gradient figures of seeds 002 and 004 instead (with
`--quick` for their small settings); `--only all` draws everything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quadlab import DEFAULT_OPTIMIZERS, cli_noise, run_study
from quadlab.cli import show_sweep
from quadlab.progress import Progress

from . import fig8_quadratic, fig_batch, fig_eps, fig_newton

OUT = Path(__file__).resolve().parent / "out"
FIGURES = ("fig8", "newton", "eps", "batch")


def _fig8(args) -> list[Path]:
    cases = ("hetero", "homo", "transformer", "cnn")
    seeds = tuple(range(args.seeds))
    with Progress(len(cases) * len(seeds) * len(DEFAULT_OPTIMIZERS), "figure 8") as bar:
        result = run_study(cases=cases, seeds=seeds, steps=args.steps, progress=bar.advance)
    print(show_sweep(result.summary()))
    return fig8_quadratic.plot(result, args.out)


def _newton(args) -> list[Path]:
    result = cli_noise.run_newton(args.quick)
    print(cli_noise.show_newton(result.summary()))
    return fig_newton.plot(result, args.out)


def _eps(args) -> list[Path]:
    result = cli_noise.run_eps(args.quick)
    print(cli_noise.show_eps(result.summary()))
    return fig_eps.plot(result, args.out)


def _batch(args) -> list[Path]:
    results = cli_noise.run_batch(args.quick)
    print(cli_noise.show_batch({k: r.summary() for k, r in results.items()}))
    return fig_batch.plot(results, args.out)


JOBS = {"fig8": _fig8, "newton": _newton, "eps": _eps, "batch": _batch}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m figures", description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60_000)
    ap.add_argument("--only", nargs="+", choices=(*FIGURES, "all"), default=["fig8"],
                    help="which figures (default: fig8)")
    ap.add_argument("--quick", action="store_true",
                    help="small settings for the newton/eps/batch figures")
    args = ap.parse_args(argv)
    names = FIGURES if "all" in args.only else tuple(dict.fromkeys(args.only))
    paths = []
    for name in names:
        paths += JOBS[name](args)
    print("\nwrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
