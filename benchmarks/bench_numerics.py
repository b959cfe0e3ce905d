"""What the engine's numerical choices change in the spectra, against the probes' own noise.

Two choices of ``nets`` trade exactness for speed or memory, and a reviewer may ask whether the
numbers it reports are artifacts of them:

* ``partial``: **partial reorthogonalization** (``reorth="partial"``, Simon's semi-orthogonal
  Lanczos, :func:`nets.engine.lanczos.lanczos`) keeps the basis orthogonal to ``√u`` instead of
  to working precision, so its nodes differ from full reorthogonalization's (the default) by
  about ``u‖H‖`` (``tests/nets/test_lanczos_partial.py``);
* ``float64``: **the model's precision**. The benchmark models, like the zoo's, compute in
  float32; this variant casts the model and its floating inputs to float64, so the products
  carry float64's roundoff instead of float32's.

For each benchmark model (``problems.py``) and each variant the script computes the blockwise
spectra and the full spectrum under the default (float32, full reorthogonalization) and under
the variant, from the same probes (same ``--seed``), and compares them against the noise of the
probes themselves:

* **JS0** (:func:`nets.js0`, default recipe): ``|ΔJS0|`` between the two against JS0's
  bootstrap standard deviation over the probes (:func:`nets.js0_bootstrap`, the default's
  spectra);
* **densities**: the largest over the blocks of the JS distance between a block's density
  under the two (:func:`nets.js_between`) against the median over the blocks of the distance
  between the densities of two halves of the probes (the default's spectra), the noise a density
  of half the probes carries; for the full spectrum the same with its one density;
* **largest Ritz values**: the largest difference of a block's largest Ritz value between the
  two, relative to the largest of them (:func:`verdicts.top_difference`, as ``bench_ab.py``
  reports it; not judged: no probe noise of its own).

Every comparison is made at each of ``--zero-rels``, the log recipe's zero threshold
(``DensityRecipe.zero_rel``: eigenvalues within ``zero_rel · max |λ|`` of zero form one atom
at zero, and blocks whose every eigenvalue does are left out of JS0): the default, float32's
machine epsilon, and coarser ones. Against ``float64`` this asks from which threshold on the
float32 products resolve what float64 ones do.

Each comparison's share of its noise is judged by :func:`verdicts.agreement` (``agrees`` up to
a twentieth of the noise, ``partly`` up to a half, ``disagrees`` beyond, ``inconclusive`` with
one probe); a row's verdict is its worst share's. ``passes`` counts the Lanczos steps whose
vector was orthogonalized against its basis (``info["reorthogonalized_steps"]``), default and
variant, out of ``steps`` (every block's run, probes in lockstep). The report leaves the times
out: the ``--json`` rows keep one run of each as ``s_default`` and ``s_variant`` (the default's
first, paying the process's warm-up); ``peers-*-partial.md`` times partial against full with
intervals.

    python benchmarks/bench_numerics.py --out benchmarks/results/numerics.md \\
        --json benchmarks/results/numerics.json   # --models gpt --variants partial

With ``--json`` every row is written as soon as it is measured and a rerun with ``--resume``
measures only the rows the file lacks (or measured with other code or settings).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
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
from nets.engine.density import ZERO_REL

#: The models measured by default (``problems.py``): the spectrum benchmark's three.
MODELS = ("gpt", "gpt2-s", "gpt2-m")

#: The variants compared with the default (float32 model, full reorthogonalization): what each
#: changes (see the module docstring).
VARIANTS = ("partial", "float64")

#: The log recipe's zero thresholds (``DensityRecipe.zero_rel``: eigenvalues within
#: ``zero_rel · max |λ|`` of zero form one atom) every comparison is made at: the default
#: (float32's machine epsilon) and coarser ones, to see from which threshold on the float32
#: products resolve what float64 ones do.
ZERO_RELS = (ZERO_REL, 1e-6, 1e-5)

#: Bootstrap resamples of JS0's probe noise.
N_BOOT = 200

COLUMNS = [("model", "model", ""), ("kind", "kind", ""), ("variant", "variant", ""),
           ("zero_rel", "zero_rel", ".1e"), ("probes", "P", ""), ("steps", "k", ""),
           ("passes", "passes default / variant / steps", ""),
           ("js0", "JS0", ".4f"), ("d_js0", "ΔJS0", ".1e"), ("js0_std", "JS0 std", ".1e"),
           ("js0_share", "JS0 share", ".1e"), ("d_density", "max JS(default, variant)", ".1e"),
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


def probe_noise(default: dict[str, nets.BlockSpectrum], *, seed: int,
                recipe: nets.DensityRecipe | None = None) -> dict:
    """The default spectra's JS0 and their probe noise, what every variant is judged against.

    Args:
        default: ``{block: BlockSpectrum}`` computed the default way (a full spectrum: one
            block).
        seed: Seeds JS0's bootstrap.
        recipe: The density recipe (default :class:`nets.DensityRecipe`).

    Returns:
        ``js0`` and ``js0_std`` (JS0's bootstrap standard deviation over the probes; both
        ``None`` for one block, the std NaN for one probe) and ``probe_js`` (the median over
        the blocks of the JS distance between two halves of the probes; NaN for one probe).
    """
    probes = next(iter(default.values())).probes
    noise: dict = {"js0": None, "js0_std": None}
    if len(default) > 1:
        noise["js0"] = nets.js0(default, recipe)
        noise["js0_std"] = (nets.js0_bootstrap(default, recipe, n_boot=N_BOOT,
                                               rng=np.random.default_rng([seed, 1])).std
                            if probes > 1 else float("nan"))
    noise["probe_js"] = (float(np.median(list(nets.js_between(*_halves(default),
                                                               recipe).values())))
                         if probes > 1 else float("nan"))
    return noise


def _tops(spectra: dict[str, nets.BlockSpectrum]) -> dict:
    """A row of :func:`verdicts.top_difference`: each block's largest Ritz value."""
    return {"top": {k: float(s.nodes.max()) for k, s in spectra.items()}}


def compare(default: dict[str, nets.BlockSpectrum], variant: dict[str, nets.BlockSpectrum], *,
            seed: int, recipe: nets.DensityRecipe | None = None,
            noise: dict | None = None) -> dict:
    """Two computations of one model's spectra compared against the probe noise.

    Args:
        default: ``{block: BlockSpectrum}`` computed the default way (a full spectrum: one
            block).
        variant: The same blocks computed another way, from the same probes.
        seed: Seeds JS0's bootstrap.
        recipe: The density recipe of every JS distance (default :class:`nets.DensityRecipe`).
        noise: :func:`probe_noise` of ``default`` under ``recipe``, where the caller compares
            several variants with one default (else computed here).

    Returns:
        ``d_density``, ``probe_js``, ``density_share`` and ``d_lambda`` (see the module
        docstring); with two blocks or more also ``js0``, ``d_js0``, ``js0_std`` and
        ``js0_share`` (else ``None``); and ``verdict``, the worst share's
        :func:`verdicts.agreement`.
    """
    row = dict(noise or probe_noise(default, seed=seed, recipe=recipe))
    shares = []
    if row["js0"] is not None:
        row["d_js0"] = abs(nets.js0(variant, recipe) - row["js0"])
        row["js0_share"], v = verdicts.agreement(row["d_js0"], row["js0_std"])
        shares.append(v)
    else:
        row.update(d_js0=None, js0_share=None)
    row["d_density"] = max(nets.js_between(default, variant, recipe).values())
    row["density_share"], v = verdicts.agreement(row["d_density"], row["probe_js"])
    shares.append(v)
    row["d_lambda"] = verdicts.top_difference(_tops(variant), _tops(default))
    order = ("inconclusive", "disagrees", "partly", "agrees")
    row["verdict"] = min(shares, key=order.index)
    return row


def cast(model: torch.nn.Module, data: list, dtype: torch.dtype) -> tuple[torch.nn.Module, list]:
    """``model`` and the floating tensors of ``data``'s ``(inputs, targets)`` in ``dtype``
    (integer tensors, such as token ids and class labels, as they are).

    Args:
        model: The network (cast in place, as ``Module.to`` does).
        data: Its batches.
        dtype: A floating dtype.
    """
    def to(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype) if t.is_floating_point() else t

    return model.to(dtype), [(to(x), to(y)) for x, y in data]


def _spectra(model, loss_fn, data, kind: str, probes: int, steps: int, seed: int,
             reorth: str) -> tuple[dict[str, nets.BlockSpectrum], float, int]:
    """One computation: the spectra, its wall time and its passes over the basis."""
    info: dict = {}
    t0 = time.perf_counter()
    if kind == "blocks":
        out = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=steps, probes=probes,
                                      seed=seed, reorth=reorth, info=info)
    else:
        out = {"full": nets.full_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                          probes=probes, seed=seed, reorth=reorth, info=info)}
    return out, time.perf_counter() - t0, int(info["reorthogonalized_steps"])


def measure(name: str, kind: str, variants: list[str], probes: int, steps: int,
            seed: int, zero_rels: list[float]) -> list[dict]:
    """One model's spectra of ``kind`` (``"blocks"`` or ``"full"``) the default way and under
    each of ``variants``, compared (:func:`compare`) at each of ``zero_rels``; one row per
    variant and threshold."""
    model, loss_fn, data = problems.load(name)
    load = os.getloadavg()[0]
    rows = []
    with sdpa_kernel([SDPBackend.MATH]):
        default, s_default, p_default = _spectra(model, loss_fn, data, kind, probes, steps,
                                                 seed, "full")
        total = sum(min(steps, s.dim) for s in default.values())
        recipes = {z: nets.DensityRecipe(zero_rel=z) for z in zero_rels}
        noises = {z: probe_noise(default, seed=seed, recipe=r) for z, r in recipes.items()}
        for variant in variants:
            if variant == "partial":
                got, s_variant, p_variant = _spectra(model, loss_fn, data, kind, probes, steps,
                                                     seed, "partial")
            else:  # float64: a copy of the model, so the default's stays as it was
                wide, wide_data = cast(copy.deepcopy(model), data, torch.float64)
                got, s_variant, p_variant = _spectra(wide, loss_fn, wide_data, kind, probes,
                                                     steps, seed, "full")
            rows += [{"model": name, "kind": kind, "variant": variant, "zero_rel": z,
                      "probes": probes, "steps": steps, "seed": seed, "load": load,
                      "s_default": s_default, "s_variant": s_variant,
                      "passes": f"{p_default} / {p_variant} / {total}",
                      **compare(default, got, seed=seed, recipe=recipes[z],
                                noise=noises[z])}
                     for z in zero_rels]
    return rows


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=problems.MODELS)
    ap.add_argument("--kinds", nargs="+", default=["blocks", "full"], choices=["blocks", "full"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--zero-rels", nargs="+", type=float, default=list(ZERO_RELS),
                    metavar="Z", help="the log recipe's zero thresholds to compare at, each in "
                    "(0, 1) (default: " + " ".join(f"{z:.3g}" for z in ZERO_RELS) + ")")
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
    if not all(0 < z < 1 for z in args.zero_rels):
        ap.error("--zero-rels must be in (0, 1)")
    if args.resume and not args.json:
        ap.error("--resume needs --json (the file to resume from)")
    version = reports.code_version(__file__)

    def key(r: dict) -> tuple:
        return (r["model"], r["kind"], r["variant"], r["zero_rel"], r["probes"], r["steps"],
                r["seed"])

    kept: dict[tuple, dict] = {}
    if args.resume and Path(args.json).exists():
        saved = reports.read_json(args.json, "resume from")
        if saved.get("code") == version["code"]:
            kept = {key(r): r for r in saved["rows"]}
    rows = []
    with meters.torch_threads(args.threads):
        for name in args.models:
            for kind in args.kinds:
                want = [dict(model=name, kind=kind, variant=v, zero_rel=z, probes=args.probes,
                             steps=args.steps, seed=args.seed)
                        for v in args.variants for z in args.zero_rels]
                missing = list(dict.fromkeys(w["variant"] for w in want if key(w) not in kept))
                new = {key(r): r for r in (measure(name, kind, missing, args.probes, args.steps,
                                                   args.seed, args.zero_rels)
                                           if missing else [])}
                for w in want:
                    row = new.get(key(w)) or kept[key(w)]
                    rows.append(row)
                    print(f"{name} {kind} {w['variant']} zero_rel {w['zero_rel']:.1e}: "
                          f"{row['verdict']}", file=sys.stderr, flush=True)
                if args.json:
                    atomic_write_bytes(Path(args.json), dumps(
                        {"commit": version["commit"], "code": version["code"],
                         "rows": rows}, indent=1).encode())
    shown = [{k: as_float(v) if k.endswith("share") and v is not None else v
              for k, v in r.items()} for r in rows]
    loads = [r["load"] for r in rows]
    text = "\n".join([
        "# The engine's numerical choices: the spectra's difference against the probe noise",
        "",
        f"Generated by `benchmarks/bench_numerics.py --models {' '.join(args.models)} "
        f"--kinds {' '.join(args.kinds)} --variants {' '.join(args.variants)} --zero-rels "
        f"{' '.join(f'{z:.3g}' for z in args.zero_rels)} --steps "
        f"{args.steps} --probes {args.probes} --seed {args.seed} --threads {args.threads}` at "
        f"{version['commit']} on {reports.machine_note()}; load average "
        f"{min(loads):.1f}-{max(loads):.1f} at the rows' starts. Each row computes one "
        "model's blockwise spectra (`blocks`) or its full spectrum (`full`) the default way "
        "(the model in float32, full reorthogonalization) and under a variant, from the same "
        "probes: `partial` reorthogonalization (`reorth=\"partial\"`), or the model and its "
        "floating inputs in `float64`; every comparison is made at each `zero_rel` of the log "
        "recipe (eigenvalues within `zero_rel` times the model's largest of zero form one "
        "atom; the first is the default). A `share` is a difference's share of the probe noise "
        "beside it: `JS0 share` is `ΔJS0` (the absolute difference of JS0 between the two) "
        "over JS0's bootstrap standard deviation over the probes, `density share` the largest "
        "JS distance between a block's densities under the two over the median distance "
        "between the densities of two halves of the probes (the default's); `verdict` is the "
        f"worst share's (agrees up to {verdicts.AGREE_SHARE:g}, partly up to "
        f"{verdicts.PARTLY_SHARE:g}, disagrees beyond); `λmax rel. diff` the largest "
        "difference of a block's largest Ritz value over the largest of them; `passes` the "
        "steps orthogonalized against their basis (times: the `--json` rows). Definitions: "
        "the script's docstring.", "",
        format_table(shown, COLUMNS, markdown=True)])
    for r in rows:
        r["seconds"] = r["s_default"] + r["s_variant"]
    reports.publish(text, args.out, rows)


if __name__ == "__main__":
    main()
