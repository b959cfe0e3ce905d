"""Runtime of the CPU ladder: measured seconds per rung, and the extrapolated total of a profile.

Reads records written by ``nets ladder --json`` (each carries ``spectrum_seconds`` and, when its
gap was computed in that call, ``gap_seconds_this_call``) and, for every rung of every family
of a ladder profile, takes the measured seconds where a record has them and otherwise
extrapolates ``log t = a · log(parameters) + c_family``: one exponent ``a`` fitted by least
squares over the families with at least two measured rungs (each family its own intercept,
because the cost per parameter differs by architecture), ``a = 1`` when no family has two;
a family with no measured rung gets the mean intercept. Spectra and gaps are extrapolated
separately; the gap only at rungs with at most the profile's ``gap_max_params`` parameters
(the others get JS0 only). Prints JSON with one row per rung saying which numbers are
measured and which extrapolated. Timings depend on the machine's load (recorded: the load
average when this script ran; the records' own timings were taken under whatever load their
run saw).

    python benchmarks/ladder_runtime.py runs/ladder/*.json [--profile ladder] \\
        [--wall-seconds S --shards N] [--note TEXT] > benchmarks/results/ladder-runtime.json

``--wall-seconds`` is the wall-clock time of the whole run as measured by its caller (``make
ladder`` runs the families in ``--shards`` parallel processes and passes both), beside the
serial sum of the records' seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from labkit.jsonio import dumps, loads
from nets.studies.ladder import LADDER_PROFILES
from nets.zoo.families import LADDER_FAMILIES, ladder, parameter_count


def _fit(points: dict[str, list[tuple[int, float]]]) -> tuple[float, dict[str, float], str]:
    """Exponent and per-family intercepts of ``log t = a log n + c_f``."""
    multi = {f: p for f, p in points.items() if len({n for n, _ in p}) >= 2}
    if multi:
        xs, ys = [], []
        for p in multi.values():
            ln = np.log([n for n, _ in p])
            lt = np.log([t for _, t in p])
            xs.append(ln - ln.mean())
            ys.append(lt - lt.mean())
        x, y = np.concatenate(xs), np.concatenate(ys)
        a = float(x @ y / (x @ x)) if x @ x > 0 else 1.0
        how = (f"exponent fitted on log-log within {len(multi)} families "
               f"({', '.join(sorted(multi))}), one intercept per family")
    else:
        a, how = 1.0, "assumed linear in parameters (no family has two measured sizes)"
    icpt = {f: float(np.mean([math.log(t) - a * math.log(n) for n, t in p]))
            for f, p in points.items() if p}
    return a, icpt, how


def _predict(a: float, icpt: dict[str, float], family: str, n: int) -> float:
    c = icpt.get(family, float(np.mean(list(icpt.values()))) if icpt else math.nan)
    return math.exp(a * math.log(n) + c)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+")
    ap.add_argument("--profile", default="ladder", choices=tuple(LADDER_PROFILES))
    ap.add_argument("--wall-seconds", type=float, default=None,
                    help="wall-clock seconds of the whole run (measured by the caller)")
    ap.add_argument("--shards", type=int, default=1,
                    help="parallel processes the run used (make ladder: 2)")
    ap.add_argument("--note", default="", help="how the run was made (load, other jobs)")
    args = ap.parse_args(argv)
    if args.wall_seconds is not None and not (args.wall_seconds > 0 and args.shards >= 1):
        ap.error("--wall-seconds must be > 0 and --shards >= 1")
    prof = LADDER_PROFILES[args.profile]
    recs = [r for f in args.records for r in loads(Path(f).read_text())
            if r.get("profile") == prof.name]
    spec: dict[str, dict[str, float]] = {}
    gap: dict[str, dict[str, float]] = {}
    params: dict[str, int] = {}
    for r in recs:
        params[r["name"]] = int(r["parameters"])
        spec.setdefault(r["family"], {})[r["name"]] = float(r["spectrum_seconds"])
        if r.get("gap_seconds_this_call"):
            gap.setdefault(r["family"], {})[r["name"]] = float(r["gap_seconds_this_call"])
    a_s, c_s, how_s = _fit({f: [(params[k], t) for k, t in d.items()] for f, d in spec.items()})
    a_g, c_g, how_g = _fit({f: [(params[k], t) for k, t in d.items()] for f, d in gap.items()})
    rows, total_s, total_g = [], 0.0, 0.0
    for fam in LADDER_FAMILIES:
        for rung in ladder(fam, prof.rungs):
            n = parameter_count(rung)
            s_meas = spec.get(fam, {}).get(rung.name)
            s = s_meas if s_meas is not None else _predict(a_s, c_s, fam, n)
            row = {"name": rung.name, "parameters": n, "spectrum_seconds": s,
                   "spectrum": "measured" if s_meas is not None else "extrapolated"}
            if prof.gap is not None and n <= prof.gap_max_params:
                g_meas = gap.get(fam, {}).get(rung.name)
                g = g_meas if g_meas is not None else (_predict(a_g, c_g, fam, n) if gap
                                                       else math.nan)
                row.update(gap_seconds=g, gap="measured" if g_meas is not None else
                           ("extrapolated" if gap else "no gap measured anywhere"))
                total_g += g if math.isfinite(g) else 0.0
            else:
                row.update(gap_seconds=None, gap="not planned: JS0 only at this size")
            total_s += s
            rows.append(row)
    out = {"profile": prof.name, "gap_max_params": prof.gap_max_params,
           "gap_budget": None if prof.gap is None else prof.gap.settings(),
           "load_average_when_run": list(os.getloadavg()),
           "cores": os.cpu_count(),
           "note": args.note or None,
           "wall_clock": None if args.wall_seconds is None else {
               "seconds": args.wall_seconds, "hours": args.wall_seconds / 3600,
               "shards": args.shards},
           "rungs": rows,
           "extrapolation": {"spectra_exponent": a_s, "spectra_how": how_s,
                             "gap_exponent": a_g, "gap_how": how_g if gap else
                             "no gap measured",
                             "spectra_total_hours": total_s / 3600,
                             "gap_total_hours": total_g / 3600,
                             "total_hours": (total_s + total_g) / 3600,
                             "what": "serial sum of every rung's seconds (measured where a "
                                     "record has them, extrapolated otherwise)"}}
    print(dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
