"""Command line for the noisy-gradient studies: `quadlab newton`, `quadlab eps`, `quadlab batch`.

Thin layer: each command builds a study's settings (`--quick` for a run under a minute), calls
the library and prints a table (or JSON with `--json`). The settings live in `SETTINGS` so that
the figure job uses the same ones.
"""

from __future__ import annotations

import numpy as np

from labkit.progress import Progress
from labkit.tables import format_table
from quadlab.studies.batch import batch_studies
from quadlab.studies.eps import eps_study
from quadlab.studies.newton import newton_study
from quadlab.studies.settings import settings_for


def run_newton(quick: bool, *, progress_enabled: bool | None = None):
    """The newton study with the command's settings (shared with the figure job)."""
    kw = settings_for("newton", quick)
    n = (len(kw.get("problems", (1, 2, 3))) * 3 * 2 * len(kw.get("beta2s", (1, 2, 3))))
    with Progress(n, "newton", enabled=progress_enabled) as bar:
        return newton_study(progress=bar.advance, **kw)


def run_eps(quick: bool, *, progress_enabled: bool | None = None):
    """The eps study with the command's settings."""
    kw = settings_for("eps", quick)
    n = len(kw["cases"]) * len(kw["seeds"]) * len(kw.get("rel_eps", range(9))) * 3
    with Progress(n, "eps", enabled=progress_enabled) as bar:
        return eps_study(progress=bar.advance, **kw)


def run_batch(quick: bool, *, case: str = "hetero", noise: str = "hessian",
              progress_enabled: bool | None = None):
    """The batch study under both criteria: {"one-step": result, "budget": result}."""
    kw = settings_for("batch", quick)
    sizes = kw["batch_sizes"]
    with Progress(2 * 5 * len(sizes), "batch", enabled=progress_enabled) as bar:
        return batch_studies(batch_sizes=sizes, case=case, noise=noise, progress=bar.advance,
                             criteria={c: kw[c] for c in ("one-step", "budget")})


def cmd_newton(args) -> dict:
    return run_newton(args.quick, progress_enabled=None if not args.quiet else False).summary()


def show_newton(res: dict) -> str:
    table = format_table(res["rows"], [
        ("problem", "problem", ""), ("noise", "noise", ""), ("optimizer", "opt", ""),
        ("beta2", "β2", "g"), ("p", "p: v∝H_ii^p", ".2f"), ("q", "q: v∝(H²)_ii^q", ".2f"),
        ("err_su", "err σ²H²", ".2g"), ("err_noise", "err C", ".2g"),
        ("err_gn", "err ggᵀ=σ²H", ".2g"), ("signal", "signal", ".3f"),
        ("iso_err", "iso err", ".2f"), ("edge", "η H/√v", ".2f"),
        ("snapshot", "snapshot", ".3f")])
    return (f"Seed 002: what Adam's v (AdaBelief's s) estimates near the optimum "
            f"(η = {res['lr']:g}, {res['steps']} steps, second half averaged, "
            f"{res['trajectories']} runs, σ = {res['sigma']:g}, B = {res['batch_size']})\n"
            "diagonal Newton (seed) predicts p = 2, q = 1; Gauss–Newton noise (least squares) "
            "p = 1; isotropic noise p = 0\n\n" + table)


def cmd_eps(args) -> dict:
    return run_eps(args.quick, progress_enabled=None if not args.quiet else False).summary()


def show_eps(res: dict) -> str:
    rows = []
    for case, variants in res["median_speedup"].items():
        for variant, speeds in variants.items():
            row = {"case": case, "variant": variant}
            row.update({f"{re:g}": (s if s is not None else float("nan"))
                        for re, s in zip(res["rel_eps"], speeds, strict=True)})
            rows.append(row)
    cols = [("case", "case", ""), ("variant", "Adam (β1=0)", "")]
    cols += [(f"{re:g}", f"ε/G={re:g}", ".3g") for re in res["rel_eps"]]
    sign = ", ".join(f"{c}: {np.median(v):.0f}" for c, v in res["sign_gd_iterations"].items())
    return (f"Seed 004: speed-up of tuned Adam over tuned GD (iterations to {res['tol']:g} × "
            f"initial gap, budget {res['steps']}), median over seeds {res['seeds']}; "
            "G = median |∇L(w0)|\n\n" + format_table(rows, cols)
            + f"\n\nsign descent iterations (ε → 0 limit of softsign): {sign}")


def cmd_batch(args) -> dict:
    res = run_batch(args.quick, case=args.case, noise=args.noise,
                    progress_enabled=None if not args.quiet else False)
    return {crit: r.summary() for crit, r in res.items()}


def show_batch(res: dict) -> str:
    parts = []
    for crit, r in res.items():
        labels = list(r["surge"])
        sizes = sorted({row["batch_size"] for row in r["rows"]})
        table_rows = []
        for b in sizes:
            row = {"B": b}
            for row_in in r["rows"]:
                if row_in["batch_size"] == b:
                    row[row_in["optimizer"]] = row_in["lr_star"]
            table_rows.append(row)
        cols = [("B", "B", "d")] + [(lab, f"η* {lab}", ".3g") for lab in labels]
        surge = ", ".join(f"{lab}: {r['shape'][lab]} (peak B={r['peak_batch'][lab]})"
                          for lab in labels)
        parts.append(f"criterion {crit} — case {r['case']}, noise {r['noise']} "
                     f"(σ = {r['sigma']:.4g}), ε_ref = {r['eps_ref']:.4g}, repeats "
                     f"{r['repeats']}" + (f", {r['steps']} steps" if crit == "budget" else "")
                     + "\n\n" + format_table(table_rows, cols) + f"\n\nshape of η*(B): {surge}")
    return "Seed 004: optimal step size η* against batch size B\n\n" + "\n\n".join(parts)


def add_parsers(sub) -> None:
    """Register the three commands on an argparse subparsers object."""
    p = sub.add_parser("newton", help="seed 002: Adam's v vs σ²H² (diagonal Newton) and "
                       "g gᵀ vs σ²H (Gauss–Newton); AdaBelief")
    p.add_argument("--quick", action="store_true", help="small settings (< 1 minute)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("eps", help="seed 004: Adam-over-GD speed-up as a function of ε")
    p.add_argument("--quick", action="store_true", help="small settings (< 1 minute)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("batch", help="seed 004: optimal learning rate vs batch size, surge")
    p.add_argument("--quick", action="store_true", help="small settings (< 1 minute)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--case", default="hetero", choices=("hetero", "homo", "transformer", "cnn"))
    p.add_argument("--noise", default="hessian", choices=("hessian", "isotropic",
                                                          "least-squares"))


COMMANDS = {"newton": (cmd_newton, show_newton), "eps": (cmd_eps, show_eps),
            "batch": (cmd_batch, show_batch)}
