"""`python -m proofs [--json] [--effort test|default|high] [--seed N] [--only ID ...]`."""

from __future__ import annotations

import argparse
import sys
import time

from labkit.interrupts import run_interruptible
from labkit.jsonio import dumps

from .efforts import EFFORTS
from .report import CHECKERS, format_table, run_all


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the checkers, print the table (or JSON).

    User errors print one ``python -m proofs: error: …`` line and exit 2; Ctrl-C prints one line
    and exits 130 (:func:`labkit.interrupts.run_interruptible`).

    Args:
        argv: The command line without the program name (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0, 2 or 130.
    """
    parser = argparse.ArgumentParser(prog="python -m proofs",
                                     description="Check the paper's theory numerically.")
    parser.add_argument("--json", action="store_true", help="print a JSON list of verdicts")
    parser.add_argument("--effort", choices=tuple(EFFORTS), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=tuple(CHECKERS), default=None)
    args = parser.parse_args(argv)
    return run_interruptible(lambda: _run(args), prog="python -m proofs",
                             saved="nothing is saved by this command; rerun it to start again")


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        verdicts = run_all(effort=args.effort, seed=args.seed,
                           only=tuple(args.only) if args.only else None)
    except (ValueError, TypeError) as exc:
        print(f"python -m proofs: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(dumps([v.to_dict() for v in verdicts], ensure_ascii=False, indent=1))
    else:
        print(format_table(verdicts))
        print(f"\n(effort {args.effort}, seed {args.seed}, {time.perf_counter() - start:.1f} s)")
    return 0
