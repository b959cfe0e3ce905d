"""``nets ladder`` and ``nets predictor``: the model-size ladder and the out-of-sample predictor
validation (formatting only; the work is in :mod:`nets.studies.ladder` and
:mod:`nets.studies.predictor`).

Examples::

    nets ladder --family gpt --profile ladder --json > runs/ladder-gpt.json
    nets ladder --family vit --profile tiny
    nets predictor runs/ladder-*.json --write-evidence nets/studies/evidence_ladder.json
"""

from __future__ import annotations

import argparse
import math

import torch

from labkit.jsonio import dumps, load_file
from labkit.progress import Progress
from labkit.tables import format_table
from nets.cli.common import add_device_argument, add_model_seed_argument, distributed
from nets.studies.gpucheck import gpu_check
from nets.studies.ladder import LADDER_PROFILES, run_ladder
from nets.studies.predictor import merge_records, validate, write_ladder_evidence
from nets.zoo.factory import is_factory
from nets.zoo.families import FAMILIES, LADDER_FAMILIES

__all__ = ["register"]

COLUMNS = [("name", "rung", ""), ("parameters", "params", "d"), ("blocks", "blocks", "d"),
           ("js0", "JS0 (log)", ".3f"), ("js0_ci", "95% interval", ""),
           ("gaps", "gap ln(L_SGD/L_Adam) per batch (seed std of SGD)", "")]


def _row(r: dict) -> dict:
    j = r["js0"]["log"]
    if r["gap"] is None:
        gaps = "not measured: " + r["gap_skipped"]
    else:
        gaps = "  ".join(f"B={b}: {g['gap']:+.3f} (±{g['sgd_seed_std']:.3f})"
                         for b, g in r["gap"].items())
    return {"name": r["name"], "parameters": r["parameters"], "blocks": r["blocks"],
            "js0": j["value"], "js0_ci": f"[{j['low']:.3f}, {j['high']:.3f}]", "gaps": gaps}


def _family(value: str) -> str:
    if value in LADDER_FAMILIES or is_factory(value):
        return value
    raise argparse.ArgumentTypeError(f"unknown family {value!r}: choose from "
                                     f"{', '.join(LADDER_FAMILIES)} or give a factory "
                                     "module:function")


def _cmd_ladder(args) -> int:
    if args.threads < 1:
        raise ValueError("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    quiet = args.quiet or args.comm.rank != 0
    with Progress(None, f"ladder {args.family}", enabled=False if quiet else None) as bar:
        recs = run_ladder(args.family, args.profile, sizes=args.sizes, cache_dir=args.cache,
                          comm=args.comm, progress=bar.advance, gap=not args.no_gap,
                          device=args.torch_device, seed=args.model_seed)
    if args.comm.rank != 0:
        return 0
    if args.json:
        print(dumps(recs, indent=1))
        return 0
    print(f"# ladder {args.family}, profile {args.profile}: JS0 at initialization (Lanczos "
          "spectra, bootstrap over probes) and the tuned SGD-momentum vs Adam gap")
    print(format_table([_row(r) for r in recs], COLUMNS))
    return 0


def _fmt(x, spec=".2f") -> str:
    return "nan" if x is None or not math.isfinite(x) else format(x, spec)


def _cmd_predictor(args) -> int:
    records = []
    for path in args.records:
        doc = load_file(path, "pass the JSON record files that `nets ladder --json` writes")
        records.extend(doc if isinstance(doc, list) else doc.get("records", []))
    if not records:
        raise ValueError("no ladder records in the given files (use `nets ladder --json`)")
    records = merge_records(records)
    result = validate(records)
    if args.write_evidence:
        write_ladder_evidence(records, result, args.write_evidence)
    if args.json:
        print(dumps(result, indent=1))
        return 0
    print(f"# predictor validation at batch size {result['batch_size']}: selection families "
          f"{result['protocol']['selection_families']}, held out "
          f"{result['protocol']['held_out_families']}; call 'SGD lags' = gap > ln 1.5")
    rows = []
    for name, c in result["candidates"].items():
        sel, ho = c["selection"], c["held_out"]
        rho = (ho["spearman"] or {})
        rows.append({"candidate": name, "threshold": _fmt(c["threshold"], ".3g"),
                     "sel_n": sel["n"], "sel_acc": _fmt(sel["accuracy"]),
                     "ho_n": ho["n"], "ho_acc": _fmt(ho["accuracy"]),
                     "ho_rho": (f"{rho['rho']:+.2f} [{rho['low']:+.2f}, {rho['high']:+.2f}]"
                                if rho else "n/a")})
    print(format_table(rows, [("candidate", "candidate", ""), ("threshold", "threshold", ""),
                              ("sel_n", "sel n", "d"), ("sel_acc", "sel acc", ""),
                              ("ho_n", "held-out n", "d"), ("ho_acc", "held-out acc", ""),
                              ("ho_rho", "held-out Spearman rho [95%]", "")]))
    print(f"best on the selection points: {result['best']}")
    for m in result["missing"]:
        print(f"missing: {m}")
    return 0


def _cmd_gpu_check(args) -> int:
    res = gpu_check(device=args.cuda_device)
    if args.json:
        print(dumps(res, indent=1))
        return 0
    g, p = res["gpt"], res["ladder_point"]
    print(f"# gpu-check on {res['device']}")
    print(f"{g['rung']} ({g['parameters']:,} parameters), {g['blocks']} blocks, "
          f"{g['lanczos_steps']} Lanczos steps x {g['probes']} probes: {g['seconds']:.1f} s, "
          f"{g['seconds_per_hvp_step']:.3f} s per HVP step, peak memory "
          f"{g['peak_memory_bytes'] / 2**30:.2f} GiB")
    for k, (lo, hi) in g["extremes"].items():
        print(f"  {k}: Ritz values in [{lo:.4g}, {hi:.4g}]")
    print(f"{p['rung']} ({p['parameters']:,} parameters, {p['blocks']} blocks): "
          f"{p['seconds']:.1f} s, peak memory {p['peak_memory_bytes'] / 2**30:.2f} GiB")
    for k, c in p["candidates"].items():
        print(f"  {k}: {c['value']:.4g} [{c['low']:.4g}, {c['high']:.4g}]")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ladder`` and ``predictor`` to the ``nets`` sub-parsers.

    Args:
        sub: The sub-parser collection of the ``nets`` parser.
    """
    p = sub.add_parser("ladder", help="model-size ladder: JS0 per recipe and the SGD-Adam gap "
                       "at every size of a family (one record per size)")
    p.add_argument("--family", required=True, type=_family,
                   help=f"a zoo family ({', '.join(FAMILIES)}), a Hugging Face one (hf-gpt2, "
                        "hf-bert, hf-vit, hf-resnet: transformers models from configs, needs pip "
                        "install '.[hf]'), or your factory module:function (or file.py:function)"
                        " 'def family(size: int, seed: int = 0) -> (model, loss_fn, data)', "
                        "with --sizes and --no-gap")
    p.add_argument("--profile", default="ladder", choices=tuple(LADDER_PROFILES),
                   help="tiny (tests), ladder (CPU, ~5k-1M parameters), gpu (paper sizes, "
                        "spectra only)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="only these size indices (default: all)")
    p.add_argument("--cache", default=None, help="cache folder (default $NETS_CACHE or "
                   "runs/cache)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-gap", action="store_true", help="spectra and JS0 only (no training), "
                   "e.g. JS0 of every size before the gaps")
    p.add_argument("--json", action="store_true", help="print JSON (one record per size)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(p)
    add_model_seed_argument(p)
    p.set_defaults(func=distributed(_cmd_ladder))
    v = sub.add_parser("predictor", help="validate the gap predictors out of sample on ladder "
                       "records (protocol fixed in nets.studies.predictor)")
    v.add_argument("records", nargs="+", help="files written by `nets ladder --json`")
    v.add_argument("--write-evidence", default=None, metavar="PATH",
                   help="also write the validation and records as an evidence file for "
                        "`nets advise --evidence`")
    v.add_argument("--json", action="store_true", help="print JSON")
    v.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    v.set_defaults(func=_cmd_predictor)
    g = sub.add_parser("gpu-check", help="GPT-2-small blockwise spectrum and one gpu-profile "
                       "ladder point on a GPU: time per HVP, peak memory (fails without CUDA)")
    g.add_argument("--cuda-device", default="cuda", help="CUDA device (default cuda)")
    g.add_argument("--json", action="store_true", help="print JSON")
    g.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    g.set_defaults(func=_cmd_gpu_check)
