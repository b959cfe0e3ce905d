"""Command line: `quadlab run|sweep|r|newton|eps|batch` (a thin layer over the library).

Every subcommand prints a readable table, or JSON with `--json`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from labkit.interrupts import run_interruptible
from labkit.jsonio import dumps
from labkit.progress import Progress
from labkit.tables import format_table
from quadlab.cases import CASES, make_problem
from quadlab.cli import noise as cli_noise
from quadlab.constants import adam_constants, estimate_r
from quadlab.optimizers import OPTIMIZERS, make_optimizer
from quadlab.run import divergence_steps, run
from quadlab.studies.figure8 import DEFAULT_OPTIMIZERS, run_study
from quadlab.tuning import iterations_to_tolerance, tune_lr
from quadlab.validation import check_choice

CHECKPOINTS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


def _hyper(args) -> dict:
    if args.optimizer not in ("adam", "adabelief"):
        for flag in ("beta1", "beta2", "eps"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} applies to adam and adabelief only")
    if args.optimizer != "adam":
        if args.bias_correction:
            raise ValueError("--bias-correction applies to adam only")
        if args.optimizer != "adabelief":
            return {}
    hyper = {k: getattr(args, k) for k in ("beta1", "beta2", "eps") if getattr(args, k) is not None}
    if args.bias_correction:
        hyper["bias_correction"] = True
    return hyper


def cmd_run(args) -> dict:
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if not (np.isfinite(args.tol) and args.tol > 0):
        raise ValueError(f"--tol must be finite and > 0 (a fraction of the initial gap), got "
                         f"{args.tol:g}")
    if args.lr is not None and not (np.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be > 0 and finite, got {args.lr:g}")
    problem = make_problem(args.case, seed=args.seed)
    w0 = problem.initial_points(seed=args.seed)
    hyper = _hyper(args)
    if args.lr is None:
        tuned = tune_lr(problem, args.optimizer, w0=w0, steps=args.steps, tol=args.tol, **hyper)
        lr, gaps, how = tuned.lr, tuned.gaps, "tuned on the default log grid"
    else:
        lr, how = args.lr, "given"
        gaps = run(problem, args.optimizer, lr=lr, w0=w0, steps=args.steps,
                   on_divergence="ignore", **hyper)  # reported below
    iters = float(iterations_to_tolerance(gaps, args.tol))
    div = int(divergence_steps(gaps))
    return {
        "case": args.case, "seed": args.seed, "d": problem.d, "kappa": problem.kappa,
        "kappa_blocks": problem.kappa_blocks.tolist(), "optimizer": args.optimizer,
        "label": make_optimizer(args.optimizer, **hyper).label(),
        "hyper": hyper, "lr": lr, "lr_source": how, "steps": args.steps, "tol": args.tol,
        "iterations_to_tol": iters, "diverged_at": div,
        "gaps": {int(t): float(gaps[t]) for t in CHECKPOINTS if t <= args.steps},
    }


def show_run(res: dict) -> str:
    lines = [
        f"case {res['case']} (seed {res['seed']}): d = {res['d']}, κ = {res['kappa']:.6g}, "
        f"κ_l = {', '.join(f'{k:.4g}' for k in res['kappa_blocks'])}",
        f"optimizer {res['label']}, lr = {res['lr']:.6g} "
        f"({res['lr_source']})",
        f"iterations to {res['tol']:g} × initial gap: "
        + ("never" if not np.isfinite(res["iterations_to_tol"])
           else f"{res['iterations_to_tol']:.0f}")
        + (f"   DIVERGED at step {res['diverged_at']}" if res["diverged_at"] >= 0 else ""),
        "",
        format_table([{"t": t, "gap": g, "rel": g / res["gaps"][0]}
                      for t, g in res["gaps"].items()],
                     [("t", "step", "d"), ("gap", "L(w_t) − L*", ".6e"),
                      ("rel", "relative", ".3e")]),
    ]
    return "\n".join(lines)


def cmd_sweep(args) -> dict:
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1 (the number of seeds 0..N-1), got {args.seeds}")
    cases = args.cases or list(CASES)
    seeds = list(range(args.seeds))
    total = len(cases) * len(seeds) * len(DEFAULT_OPTIMIZERS)
    comm = args.comm  # None: one process
    with Progress(total if comm is None else None, "sweep",
                  enabled=None if not args.quiet and _is_rank0(args) else False) as bar:
        result = run_study(cases=cases, seeds=seeds, steps=args.steps, tol=args.tol,
                           spectra=args.spectra, progress=bar.advance,
                           map_fn=None if comm is None else comm.map)
    return result.summary()


def show_sweep(res: dict) -> str:
    table = format_table(res["rows"], [
        ("case", "case", ""), ("optimizer", "optimizer", ""),
        ("median_iterations", "median iters", ".0f"), ("min_iterations", "min", ".0f"),
        ("max_iterations", "max", ".0f"), ("reached", "reached", "d"), ("seeds", "of", "d"),
        ("median_lr", "median lr", ".3g")])
    speed = ", ".join(f"{c}: {s:.2f}×" if s is not None and np.isfinite(s) else f"{c}: n/a"
                      for c, s in res["speedup_gd_over_adam"].items())
    return (f"iterations to reach {res['tol']:g} × initial loss gap (budget {res['steps']} steps, "
            f"step sizes tuned per run)\n\n{table}\n\nGD iterations / Adam(β2=1) iterations "
            f"(medians): {speed}")


def cmd_r(args) -> dict:
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {args.trials}")
    if not np.isfinite(args.threshold):
        raise ValueError(f"--threshold must be finite, got {args.threshold:g}")
    out = []
    for case in args.cases or list(CASES):
        check_choice(case, CASES, what="case")
        problem = make_problem(case, seed=args.seed)
        r = estimate_r(problem, args.trials, seed=args.seed)
        one = adam_constants(problem, problem.initial_points(seed=args.seed))
        out.append({
            "case": case, "trials": args.trials, "threshold": args.threshold,
            "p_below": float(np.mean(r <= args.threshold)),
            "p_below_stderr": float(np.sqrt(np.mean(r <= args.threshold)
                                            * (1 - np.mean(r <= args.threshold)) / r.size)),
            "median": float(np.median(r)), "q10": float(np.quantile(r, 0.1)),
            "q90": float(np.quantile(r, 0.9)),
            "max_kappa_block": float(problem.kappa_blocks.max()),
            "example": {"C1": one.C1.tolist(), "C2": one.C2.tolist(), "r": one.r,
                        "kappa_adam": one.kappa_adam.tolist()},
        })
    return {"rows": out}


def show_r(res: dict) -> str:
    thr = res["rows"][0]["threshold"]
    table = format_table(res["rows"], [
        ("case", "case", ""), ("trials", "trials", "d"), ("p_below", f"P(r ≤ {thr:g})", ".3f"),
        ("p_below_stderr", "± s.e.", ".3f"), ("q10", "r q10", ".3g"), ("median", "r median", ".3g"),
        ("q90", "r q90", ".3g"), ("max_kappa_block", "max κ_l", ".4g")])
    return ("Theorem 1's r over standard Gaussian initial points "
            "(paper: P(r ≤ 1000) ≈ 2/3 on hetero)\n\n" + table)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="quadlab", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="one optimizer on one case")
    p.add_argument("case", choices=CASES)
    p.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float, default=None, help="step size (default: tuned)")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--beta1", type=float, default=None)
    p.add_argument("--beta2", type=float, default=None)
    p.add_argument("--eps", type=float, default=None)
    p.add_argument("--bias-correction", action="store_true")

    p = sub.add_parser("sweep", help="the quadratic study (Figure 8): tuned GD vs Adam")
    p.add_argument("--cases", nargs="+", choices=CASES)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--steps", type=int, default=60_000)
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--spectra", choices=("synthetic", "measured"), default="synthetic",
                   help="block spectra of the transformer/cnn cases (measured: from nets)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                   help="under torchrun: seconds a collective waits for the other ranks "
                        "(default nets.engine.distributed.DEFAULT_TIMEOUT_S)")

    p = sub.add_parser("r", help="Monte-Carlo distribution of Theorem 1's constant r")
    p.add_argument("cases", nargs="*", metavar="CASE", help=f"any of {', '.join(CASES)} "
                   "(default: all)")
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=1000.0)

    cli_noise.add_parsers(sub)

    for p in sub.choices.values():
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return ap


COMMANDS = {"run": (cmd_run, show_run), "sweep": (cmd_sweep, show_sweep), "r": (cmd_r, show_r),
            **cli_noise.COMMANDS}


def _communicator(args):
    """Under `torchrun` with several ranks, their communicator (only `sweep` shares its grid
    out); else None. The torch.distributed glue lives in `nets.engine.distributed`, imported only
    here
    so that quadlab itself does not load torch.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if args.command != "sweep":
        raise ValueError(f"`quadlab {args.command}` does not run distributed; start it without "
                         "torchrun (one process)")
    from nets.engine.distributed import init_from_env

    timeout = {} if args.dist_timeout is None else {"timeout_s": args.dist_timeout}
    return init_from_env(device="cpu", **timeout)


def _is_rank0(args) -> bool:
    return args.comm is None or args.comm.rank == 0


def main(argv: list[str] | None = None) -> int:
    """Run `quadlab` with `argv` (default sys.argv[1:]).

    Args:
        argv: the command line, without the program name.

    Returns:
        The exit status: 0, 2 after one `error: …` line for a user error, or 130 after one
        line when interrupted by Ctrl-C (:func:`labkit.interrupts.run_interruptible`).
    """
    args = build_parser().parse_args(argv)
    return run_interruptible(lambda: _run(args), prog=f"quadlab {args.command}",
                             saved="nothing is saved by this command; rerun it to start again")


def _run(args) -> int:
    compute, show = COMMANDS[args.command]
    args.comm = None
    reported: tuple[type[Exception], ...] = (ValueError, TypeError)
    try:
        args.comm = _communicator(args)
        if args.comm is not None:
            from nets.engine.distributed import DistributedError

            reported = (ValueError, TypeError, DistributedError)
        res = compute(args)
    except reported as exc:
        print(f"quadlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.comm is not None:
            import torch.distributed

            torch.distributed.destroy_process_group()
    if _is_rank0(args):
        print(dumps(res, indent=2) if args.json else show(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
