"""What partial reorthogonalization changes in the spectra, against the probes' own noise.

``reorth="partial"`` (Simon's semi-orthogonal Lanczos, :func:`nets.engine.lanczos.lanczos`)
keeps the basis orthogonal to ``√u`` instead of to working precision, so its nodes differ
from full reorthogonalization's by about ``u‖H‖`` (``tests/nets/test_lanczos_partial.py``). This
script measures whether that difference shows in what the package reports: for each
benchmark model (``problems.py``) it computes the blockwise spectra and the full spectrum
twice, with ``reorth="full"`` (the default) and ``"partial"``, from the same probes (same
``--seed``), and compares them against the noise of the probes themselves:

* **JS0** (:func:`nets.js0`, default recipe): ``|ΔJS0|`` between the two against JS0's
  bootstrap standard deviation over the probes (:func:`nets.js0_bootstrap`, full's spectra);
* **densities**: the largest over the blocks of the JS distance between a block's density
  under the two (:func:`nets.js_between`) against the median over the blocks of the distance
  between the densities of two halves of the probes (full's spectra), the noise a density of
  half the probes carries; for the full spectrum the same with its one density;
* **largest Ritz values**: the largest difference of a block's largest Ritz value between the
  two, relative to the model's largest (reported, not judged: no probe noise of its own).

Each comparison's share of its noise is judged by :func:`verdicts.agreement` (``agrees`` up to
a twentieth of the noise, ``partly`` up to a half, ``disagrees`` beyond, ``inconclusive`` with
one probe); a row's verdict is its worst share's. ``passes`` counts the Lanczos steps whose
vector was orthogonalized against its basis (``info["reorthogonalized_steps"]``) out of
``steps`` (every block's run, probes in lockstep). The report leaves the times out: the
``--json`` rows keep one run of each as ``s_full`` and ``s_partial`` (full's first, paying the
process's warm-up); ``peers-*-partial.md`` times the two against each other with intervals.

    python benchmarks/bench_reorth_effect.py --out benchmarks/results/reorth-effect.md \\
        --json benchmarks/results/reorth-effect.json   # --models gpt --steps 100 --probes 10

With ``--json`` every model's row is written as soon as it is measured and a rerun with
``--resume`` measures only the models the file lacks (or measured with other code or settings).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))

import meters
import problems
import reports
import verdicts

import nets
from labkit.atomic import atomic_write_bytes
from labkit.jsonio import as_float, dumps
from labkit.tables import format_table

#: The models measured by default (``problems.py``): the spectrum benchmark's three.
MODELS = ("gpt", "gpt2-s", "gpt2-m")

#: Bootstrap resamples of JS0's probe noise.
N_BOOT = 200

COLUMNS = [("model", "model", ""), ("kind", "kind", ""), ("probes", "P", ""),
           ("steps", "k", ""), ("passes", "passes full / partial / steps", ""),
           ("js0", "JS0", ".4f"), ("d_js0", "ΔJS0", ".1e"), ("js0_std", "JS0 std", ".1e"),
           ("js0_share", "JS0 share", ".1e"), ("d_density", "max JS(full, partial)", ".1e"),
           ("probe_js", "median JS(probe halves)", ".1e"),
           ("density_share", "density share", ".1e"),
           ("d_lambda", "λmax rel. diff", ".1e"), ("verdict", "verdict", "")]


def _halves(spectra: dict[str, nets.BlockSpectrum]
            ) -> tuple[dict[str, nets.BlockSpectrum], dict[str, nets.BlockSpectrum]]:
    """The spectra of the first and of the second half of the probes."""
    p = next(iter(spectra.values())).probes
    a, b = np.arange(p // 2), np.arange(p // 2, p)
    return ({k: s.select(a) for k, s in spectra.items()},
            {k: s.select(b) for k, s in spectra.items()})


def compare(full: dict[str, nets.BlockSpectrum], partial: dict[str, nets.BlockSpectrum], *,
            seed: int) -> dict:
    """The two reorthogonalizations' spectra of one model compared against the probe noise.

    Args:
        full: ``{block: BlockSpectrum}`` under ``reorth="full"`` (a full spectrum: one block).
        partial: The same blocks under ``reorth="partial"``, from the same probes.
        seed: Seeds JS0's bootstrap.

    Returns:
        ``d_density``, ``probe_js``, ``density_share`` and ``d_lambda`` (see the module
        docstring); with two blocks or more also ``js0``, ``d_js0``, ``js0_std`` and
        ``js0_share``; and ``verdict``, the worst share's :func:`verdicts.agreement`.
    """
    probes = next(iter(full.values())).probes
    row: dict = {}
    shares = []
    if len(full) > 1:
        js_f, js_p = nets.js0(full), nets.js0(partial)
        std = (nets.js0_bootstrap(full, n_boot=N_BOOT, rng=np.random.default_rng([seed, 1])).std
               if probes > 1 else float("nan"))
        row.update(js0=js_f, d_js0=abs(js_p - js_f), js0_std=std)
        row["js0_share"], v = verdicts.agreement(abs(js_p - js_f), std)
        shares.append((row["js0_share"], v))
    else:
        row.update(js0=None, d_js0=None, js0_std=None, js0_share=None)
    between = nets.js_between(full, partial)
    row["d_density"] = max(between.values())
    row["probe_js"] = (float(np.median(list(nets.js_between(*_halves(full)).values())))
                       if probes > 1 else float("nan"))
    row["density_share"], v = verdicts.agreement(row["d_density"], row["probe_js"])
    shares.append((row["density_share"], v))
    scale = max(float(np.abs(s.nodes).max()) for s in full.values())
    row["d_lambda"] = max(abs(float(full[k].nodes.max()) - float(partial[k].nodes.max()))
                          for k in full) / scale if scale > 0 else 0.0
    verdict_order = ("inconclusive", "disagrees", "partly", "agrees")
    row["verdict"] = min((v for _, v in shares), key=verdict_order.index)
    return row


def measure(name: str, kind: str, probes: int, steps: int, seed: int) -> dict:
    """One model's spectra of ``kind`` (``"blocks"`` or ``"full"``) under both
    reorthogonalizations, timed and compared (:func:`compare`)."""
    model, loss_fn, data = problems.load(name)
    out, row = {}, {"model": name, "kind": kind, "probes": probes, "steps": steps,
                    "seed": seed, "load": os.getloadavg()[0]}
    passes = []
    with sdpa_kernel([SDPBackend.MATH]):
        for mode in ("full", "partial"):
            info: dict = {}
            t0 = time.perf_counter()
            if kind == "blocks":
                out[mode] = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                                    probes=probes, seed=seed, reorth=mode,
                                                    info=info)
            else:
                out[mode] = {"full": nets.full_spectrum(model, loss_fn, data,
                                                        lanczos_steps=steps, probes=probes,
                                                        seed=seed, reorth=mode, info=info)}
            row[f"s_{mode}"] = time.perf_counter() - t0
            passes.append(int(info["reorthogonalized_steps"]))
    total = sum(min(steps, s.dim) for s in out["full"].values())
    row["passes"] = f"{passes[0]} / {passes[1]} / {total}"
    return {**row, **compare(out["full"], out["partial"], seed=seed)}


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=problems.MODELS)
    ap.add_argument("--kinds", nargs="+", default=["blocks", "full"], choices=["blocks", "full"])
    ap.add_argument("--steps", type=int, default=100,
                    help="Lanczos steps (default 100, the paper's)")
    ap.add_argument("--probes", type=int, default=10,
                    help="probes (default 10, the paper's; at least 2 for a verdict)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="Markdown report (default: print only)")
    ap.add_argument("--json", default=None, help="also write every row (JSON), after each one")
    ap.add_argument("--resume", action="store_true",
                    help="with --json: keep its rows measured by this code with these settings")
    args = ap.parse_args(argv)
    if min(args.steps, args.probes, args.threads) < 1 or args.seed < 0:
        ap.error("--steps, --probes and --threads must be positive, --seed non-negative")
    if args.resume and not args.json:
        ap.error("--resume needs --json (the file to resume from)")
    version = reports.code_version(__file__)
    kept: dict[tuple, dict] = {}
    if args.resume and Path(args.json).exists():
        saved = reports.read_json(args.json, "resume from")
        if saved.get("code") == version["code"]:
            kept = {(r["model"], r["kind"], r["probes"], r["steps"], r["seed"]): r
                    for r in saved["rows"]}
    rows = []
    with meters.torch_threads(args.threads):
        for name in args.models:
            for kind in args.kinds:
                key = (name, kind, args.probes, args.steps, args.seed)
                row = kept.get(key) or measure(name, kind, args.probes, args.steps, args.seed)
                rows.append(row)
                print(f"{name} {kind}: {row['verdict']}", file=sys.stderr, flush=True)
                if args.json:
                    atomic_write_bytes(Path(args.json), dumps(
                        {"commit": version["commit"], "code": version["code"],
                         "rows": rows}, indent=1).encode())
    shown = [{k: as_float(v) if k.endswith("share") and v is not None else v
              for k, v in r.items()} for r in rows]
    loads = [r["load"] for r in rows]
    text = "\n".join([
        "# Partial against full reorthogonalization: the spectra's difference against the "
        "probe noise", "",
        f"Generated by `benchmarks/bench_reorth_effect.py --models {' '.join(args.models)} "
        f"--kinds {' '.join(args.kinds)} --steps {args.steps} --probes {args.probes} --seed "
        f"{args.seed} --threads {args.threads}` at {version['commit']} on "
        f"{reports.machine_note()}; load average {min(loads):.1f}-{max(loads):.1f} at the "
        "rows' starts. Each row computes one model's blockwise spectra (`blocks`) or its full "
        "spectrum (`full`) with `reorth=\"full\"` and `\"partial\"` from the same probes. "
        "A `share` is a difference's share of the probe noise beside it: `JS0 share` is "
        "`ΔJS0` (the absolute difference of JS0 between the two) over JS0's bootstrap "
        "standard deviation over the probes, `density share` the largest JS distance between "
        "a block's densities under the two over the median distance between the densities of "
        "two halves of the probes (full's); `verdict` is the worst share's (agrees up to "
        f"{verdicts.AGREE_SHARE:g}, partly up to {verdicts.PARTLY_SHARE:g}, disagrees beyond); "
        "`λmax rel. diff` the largest difference of a block's largest Ritz value over the "
        "model's largest; `passes` the steps orthogonalized against their basis (times: "
        "the `--json` rows; with intervals, `peers-*-partial.md`). Definitions: the "
        "script's docstring.", "",
        format_table(shown, COLUMNS, markdown=True)])
    for r in rows:
        r["seconds"] = r["s_full"] + r["s_partial"]
    reports.publish(text, args.out, rows)


if __name__ == "__main__":
    main()
