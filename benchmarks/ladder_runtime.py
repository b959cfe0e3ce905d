"""Runtime of the CPU ladder: measured seconds per point, and the extrapolated total.

Reads records written by ``nets ladder --json`` (each carries ``spectrum_seconds`` and, when its
gap was computed in that call, ``gap_seconds_this_call``) and extrapolates to every rung of
every family of a ladder profile: time = c · parameters^a, with ``a`` fitted by least squares
on log-log where the measured points span at least 10× in parameters, else ``a = 1`` (linear in the
parameter count; stated in the output). Spectra and gaps are extrapolated separately (the gap
only up to the profile's ``gap_max_params``). Prints JSON; timings depend on the machine's load.

    python benchmarks/ladder_runtime.py runs/ladder/*.json [--profile ladder]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from labkit.jsonio import dumps, loads
from nets.studies.ladder import LADDER_PROFILES
from nets.zoo.families import FAMILIES, ladder, parameter_count


def _fit(points: list[tuple[int, float]]) -> tuple[float, float, str]:
    p = np.array([x for x, _ in points], dtype=float)
    t = np.array([y for _, y in points], dtype=float)
    if p.max() >= 10 * p.min():
        a, logc = np.polyfit(np.log(p), np.log(t), 1)
        return float(a), float(math.exp(logc)), "fitted on log-log"
    c = float(np.mean(t / p))
    return 1.0, c, ("assumed linear in parameters (the measured points span less than 10x in "
                    "parameters: too little for a fitted exponent)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+")
    ap.add_argument("--profile", default="ladder", choices=tuple(LADDER_PROFILES))
    args = ap.parse_args(argv)
    recs = [r for f in args.records for r in loads(Path(f).read_text())]
    prof = LADDER_PROFILES[args.profile]
    spec = [(r["parameters"], r["spectrum_seconds"]) for r in recs]
    gap = [(r["parameters"], r["gap_seconds_this_call"]) for r in recs
           if r.get("gap_seconds_this_call")]
    out = {"measured": [{"name": r["name"], "parameters": r["parameters"],
                         "spectrum_seconds": r["spectrum_seconds"],
                         "gap_seconds": r.get("gap_seconds_this_call")} for r in recs]}
    a_s, c_s, how_s = _fit(spec)
    total_s = total_g = 0.0
    for fam in FAMILIES:
        for rung in ladder(fam, prof.rungs):
            n = parameter_count(rung)
            total_s += c_s * n ** a_s
            if gap and n <= prof.gap_max_params:
                a_g, c_g, _ = _fit(gap)
                total_g += c_g * n ** a_g
    out["extrapolation"] = {"spectra_exponent": a_s, "spectra_how": how_s,
                            "gap_how": _fit(gap)[2] if gap else "no gap measured",
                            "spectra_total_hours": total_s / 3600,
                            "gap_total_hours": total_g / 3600,
                            "total_hours": (total_s + total_g) / 3600}
    print(dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
