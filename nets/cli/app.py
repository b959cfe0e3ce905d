"""Command line: ``nets spectrum`` and ``nets js0`` (a thin layer over the library).

Examples::

    nets spectrum --model gpt                       # full Hessian spectrum
    nets spectrum --model gpt --blocks              # one block per parameter tensor
    nets spectrum --model vit --blocks heads --steps 30 --probes 10 --json
    nets js0 --model gpt --bootstrap 200 --sensitivity

Results (settings, versions, raw nodes and weights) are written atomically to ``--out``
(default ``runs/<model>-<blocks>-s<seed>-k<steps>-p<probes>-<dtype>.json``) after every probe;
running the same command again resumes from the probes already stored. ``js0`` reuses the
stored probes, so changing only the density recipe costs no HVPs.

Started by ``torchrun`` with several processes, ``spectrum`` and ``js0`` run data parallel (each
rank takes every ``world_size``-th batch, the HVPs are all-reduced) and the training studies
share their grids out among the ranks; rank 0 alone writes files and prints::

    torchrun --nproc_per_node=2 -m nets spectrum --model gpt --blocks --steps 10 --probes 2
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from labkit.cache import code_version
from labkit.interrupts import run_interruptible
from labkit.jsonio import dumps
from labkit.progress import Progress
from labkit.tables import format_table
from nets.cli.common import add_device_argument, add_model_seed_argument, distributed, memory_budget
from nets.cli.ladder import register as register_ladder
from nets.cli.training import register  # training studies: gap, table1, advise, ...
from nets.engine.blocks import full_block, resolve_blocks
from nets.engine.density import (
    AXES,
    NORMALIZATIONS,
    RECIPES,
    ZERO_REL,
    DensityRecipe,
    lambda10,
)
from nets.engine.distributed import (
    DEFAULT_TIMEOUT_S,
    Communicator,
    DistributedError,
    init_from_env,
    launched_by_torchrun,
    local_device,
)
from nets.engine.hvp import BlockHVP
from nets.engine.js import js0_bootstrap, js0_sensitivity, js_matrix, numerically_zero_blocks
from nets.engine.lanczos import REORTH_MODES
from nets.engine.modes import MODES
from nets.engine.results import check_out_path, fingerprint, resume_spectra
from nets.engine.roles import ROLES, SPLITS
from nets.engine.slq import BlockSpectrum
from nets.engine.spectrum import operator_spectra
from nets.zoo.factory import is_factory, model_blocks, resolve_model
from nets.zoo.models import MODELS

__all__ = ["main"]

#: The modules whose code a results file depends on (its ``code`` field).
CODE_MODULES = ("nets.engine", "nets.zoo.models", "nets.zoo.data")

#: ``--check-derivatives``: the operator's ``check_derivatives`` for each choice
#: (:class:`nets.engine.hvp.BlockHVP`, "Second derivatives").
CHECK_DERIVATIVES = {"auto": None, "always": True, "never": False}


def _settings(args: argparse.Namespace) -> dict:
    dtype = args.dtype or ("native" if is_factory(args.model) else "float32")
    s = {"model": args.model, "blocks": args.blocks or "full", "seed": args.seed,
         "steps": args.steps, "probes": args.probes, "dtype": dtype,
         "model_seed": args.model_seed}
    if args.roles:
        s["roles"] = sorted(args.roles)
    if args.reorth != "full":  # other numbers (to about u‖H‖): a file of their own
        s["reorth"] = args.reorth
    return s


def _zero_rel(dtype: str) -> float:
    """The log recipe's zero threshold for the HVPs' dtype (``native``, a factory's own dtype:
    float32's): the library's default (:data:`nets.engine.density.ZERO_REL`) for float32 and
    float64 alike, so that a model's JS0 does not move with the precision it was computed in
    (at float64's own epsilon a float64 run would count near-zero eigenvalues that float32
    products do not resolve; ``benchmarks/results/numerics.md`` measures what float32 resolves
    at each threshold); a 16-bit dtype's own epsilon, coarser, where its products resolve no
    finer."""
    eps = float(torch.finfo(getattr(torch, dtype if dtype != "native" else "float32")).eps)
    return max(ZERO_REL, eps)


def _default_out(s: dict) -> Path:
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", s["model"])
    roles = "-" + "+".join(s["roles"]) if "roles" in s else ""
    reorth = f"-{s['reorth']}" if "reorth" in s else ""
    return Path("runs") / (f"{model}-{s['blocks']}{roles}-s{s['seed']}-k{s['steps']}"
                           f"-p{s['probes']}-{s['dtype']}-m{s['model_seed']}{reorth}.json")


def compute(args: argparse.Namespace) -> tuple[dict, dict[str, BlockSpectrum], Path]:
    """Compute (or resume) the spectra described by ``args`` (:func:`resume_spectra`)."""
    comm: Communicator = args.comm
    settings = _settings(args)
    out = Path(args.out) if args.out else _default_out(settings)
    if comm.rank == 0:
        check_out_path(out)
        args.results_file = out
    dtype = None if args.dtype is None else getattr(torch, args.dtype)
    model, loss_fn, data = resolve_model(args.model, seed=args.model_seed,
                                         device=args.torch_device, dtype=dtype)
    if len(data) < comm.world_size:
        raise ValueError(f"{args.model} has {len(data)} data batches: too few to share among "
                         f"{comm.world_size} processes")
    fp = fingerprint(model, data)
    data = comm.shard(data)
    with warnings.catch_warnings():
        if comm.rank != 0:  # the same blocks on every rank: rank 0 alone says what it found
            warnings.simplefilter("ignore")
        blocks = model_blocks(args.model, model, args.blocks, args.roles) if args.blocks else None
        block_list = resolve_blocks(model, blocks) if args.blocks else [full_block(model)]
    names = [b.name for b in block_list]
    bar = Progress(args.probes * args.steps, f"{args.model} {settings['blocks']}",
                   enabled=None if not args.quiet and comm.rank == 0 else False)
    state: dict = {"mode": args.hvp_mode, "info": {}, "op": None}

    def probe(p: int) -> dict[str, BlockSpectrum]:
        def cb(step: int, steps: int) -> None:
            bar.advance(f"probe {p + 1}/{args.probes}")

        if state["op"] is None:  # one operator per run: data checks, graphs, calibration once
            state["op"] = BlockHVP(model, loss_fn, data, block_list, mode=state["mode"],
                                   max_memory=args.max_memory, chunk_size=args.chunk_size,
                                   comm=comm, compile=args.compile,
                                   check_derivatives=CHECK_DERIVATIVES[args.check_derivatives])
        info: dict = {}
        new = operator_spectra(state["op"], lanczos_steps=args.steps, probes=args.probes,
                               seed=args.seed, probe_indices=[p], callback=cb,
                               reorth=args.reorth, info=info)
        state["info"] = info
        return new

    def go_on_with(stored: dict) -> None:
        # with --hvp-mode auto a resumed run keeps the mode of the stored probes, so every probe
        # of a file comes from the same product (bit-for-bit resumption)
        if args.hvp_mode == "auto" and stored.get("hvp_mode") in MODES:
            state["mode"] = stored["hvp_mode"]

    with bar:
        spectra = resume_spectra(out, settings, blocks=names, probes=args.probes,
                                 compute_probe=probe, code=code_version(CODE_MODULES),
                                 fingerprint=fp, steps=args.steps, overwrite=args.overwrite,
                                 comm=comm, metadata=lambda: state["info"],
                                 on_resume=go_on_with)
    args.engine_info = state["info"] or None
    return settings, spectra, out


def _summary(spectra: dict[str, BlockSpectrum]) -> list[dict]:
    rows = []
    for name, s in spectra.items():
        lo, hi = s.extreme_eigenvalues()
        trace = s.dim * float(np.mean((s.nodes * s.weights).sum(1)))
        try:
            l10: float | None = lambda10(s)
        except ValueError:
            l10 = None
        rows.append({"block": name, "dim": s.dim, "lambda_min": lo, "lambda_max": hi,
                     "lambda10": l10, "trace": trace})
    return rows


SPECTRUM_COLUMNS = [("block", "block", ""), ("dim", "dim", "d"),
                    ("lambda_min", "lambda_min", ".4g"), ("lambda_max", "lambda_max", ".4g"),
                    ("lambda10", "lambda10", ".4g"), ("trace", "trace", ".4g")]


def _cmd_spectrum(args: argparse.Namespace) -> int:
    if args.roles and not args.blocks:
        args.blocks = "params"
    settings, spectra, out = compute(args)
    if args.comm.rank != 0:
        return 0
    rows = _summary(spectra)
    if args.json:
        print(dumps({"settings": settings, "file": str(out), "blocks": rows,
                     "engine": getattr(args, "engine_info", None)}, indent=1))
    else:
        print(f"# {settings} -> {out}")
        print(format_table(rows, SPECTRUM_COLUMNS))
    return 0


def _cmd_js0(args: argparse.Namespace) -> int:
    if not args.blocks:
        args.blocks = "params"
    settings, spectra, out = compute(args)
    if args.comm.rank != 0:
        return 0
    if args.exclude:
        pattern = re.compile(args.exclude)  # checked in _check
        spectra = {k: v for k, v in spectra.items() if not pattern.search(k)}
        if len(spectra) < 2:
            raise ValueError(f"--exclude {args.exclude!r} leaves fewer than two blocks")
    # eigenvalues within ZERO_REL of the largest (coarser for a 16-bit dtype) count as 0
    recipe = DensityRecipe(axis=args.axis, width=args.width, grid_size=args.grid,
                           normalize=args.normalize, zero_rel=_zero_rel(settings["dtype"]))
    rng = np.random.default_rng([args.seed, 12345])
    est = js0_bootstrap(spectra, recipe, n_boot=args.bootstrap, rng=rng)
    names, mat = js_matrix(spectra, recipe)
    res = {"js0": est.value, "js0_std": est.std, "js0_interval95": [est.low, est.high],
           "n_boot": est.n_boot, "settings": settings, "file": str(out),
           "exclude": args.exclude,
           "recipe": {"axis": recipe.axis, "width": recipe.width,
                      "grid_size": recipe.grid_size, "normalize": recipe.normalize,
                      "zero_rel": recipe.zero_rel},
           "numerically_zero_blocks": numerically_zero_blocks(spectra, recipe)}
    if args.sensitivity:
        # every recipe at the run's own threshold (and a coarser one float32 resolves)
        res["sensitivity"] = js0_sensitivity(spectra, recipes={
            k: replace(r, zero_rel=recipe.zero_rel) for k, r in RECIPES.items()})
    if args.json:
        res["blocks"] = names
        res["js_matrix"] = mat.tolist()
        print(dumps(res, indent=1))
        return 0
    print(f"# {settings} -> {out}")
    print(f"JS0 = {est.value:.4f} ± {est.std:.4f} (bootstrap over probes, n={est.n_boot}; "
          f"95% [{est.low:.4f}, {est.high:.4f}])  recipe: {recipe.label}; numerically zero "
          f"blocks (left out of JS0): {', '.join(res['numerically_zero_blocks']) or 'none'}")
    mean_to_others = mat.sum(1) / max(len(names) - 1, 1)
    print(format_table([{"block": n, "js": float(v)}
                        for n, v in zip(names, mean_to_others, strict=True)],
                       [("block", "block", ""), ("js", "mean JS to others", ".4g")]))
    if args.sensitivity:
        print("\nsensitivity of JS0 to the recipe (from stored nodes and weights):")
        print(format_table(res["sensitivity"], [
            ("recipe", "recipe", ""), ("axis", "axis", ""), ("normalize", "normalize", ""),
            ("width", "width", ".4g"), ("zero_rel", "zero threshold", ".2g"),
            ("js0", "js0", ".4g")]))
    return 0


def _roles(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in roles if r not in ROLES]
    if not roles or bad:
        raise argparse.ArgumentTypeError(f"roles must be a comma-separated subset of "
                                         f"{', '.join(ROLES)}, got {text!r}")
    return roles


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nets", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True, metavar="MODEL",
                        help=f"a zoo model ({', '.join(MODELS)}) or a factory "
                             "MODULE:FUNCTION (or path/file.py:FUNCTION) returning (model, "
                             "loss_fn, data)")
    common.add_argument("--blocks", nargs="?", const="params", default=None,
                        choices=SPLITS,
                        help="blockwise spectra (default partition: one block per parameter "
                             "tensor; qkv: attention Q, K, V apart; heads: Q and K per head); "
                             "without it, `spectrum` computes the full spectrum")
    common.add_argument("--roles", type=_roles, default=None, metavar="ROLE[,ROLE]",
                        help=f"keep only blocks of these roles ({', '.join(ROLES)}), read from "
                             "module types and shapes, e.g. weight for weight matrices only "
                             "(implies --blocks)")
    common.add_argument("--steps", type=int, default=30, help="Lanczos steps (default 30)")
    common.add_argument("--probes", type=int, default=10, help="probe vectors (default 10)")
    common.add_argument("--seed", type=int, default=0, help="probe seed (default 0)")
    add_model_seed_argument(common)
    add_device_argument(common)
    common.add_argument("--dtype", default=None,
                        choices=("float32", "float64", "bfloat16", "float16"),
                        help="parameter dtype (default: float32 for zoo models, the factory's "
                             "own for user models; 16-bit ones run with a precision warning)")
    common.add_argument("--chunk-size", type=int, default=None,
                        help="tangents per vmap/batched backward (default: from --max-memory)")
    common.add_argument("--hvp-mode", default="auto", choices=MODES,
                        help="Hessian-vector product: auto (fastest on the first batch, "
                             "default), forward, reverse, reverse-block or reverse-bundle; same "
                             "numbers")
    common.add_argument("--compile", action="store_true",
                        help="compile the forward-over-reverse product with torch.compile "
                             "(forward mode only; minutes of compilation, for long runs)")
    common.add_argument("--max-memory", type=memory_budget, default=None, metavar="BYTES|least",
                        help="memory budget for kept gradient graphs, stacked tangents and "
                             "Lanczos vectors, e.g. 2G or 500M, or 'least': the least the "
                             "products run in, one batch's graph at a time (default: half the "
                             "available memory)")
    common.add_argument("--reorth", default="full", choices=REORTH_MODES,
                        help="Lanczos reorthogonalization: full (every step, default) or "
                             "partial (only where the estimated loss of orthogonality needs "
                             "it: the same spectra to about u‖H‖, faster on long runs)")
    common.add_argument("--check-derivatives", default="auto", choices=list(CHECK_DERIVATIVES),
                        help="check the products against differences of the gradient and the "
                             "loss on the first batch: auto (where the model has a custom "
                             "autograd.Function or backward hook, default), always, or never")
    common.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for this process (default: torch's choice; "
                             "1 is faster on a CPU shared with other jobs)")
    common.add_argument("--out", default=None, help="results file (JSON, resumable)")
    common.add_argument("--overwrite", action="store_true",
                        help="discard an existing results file with other settings")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    sp = sub.add_parser("spectrum", parents=[common], help="full or blockwise SLQ spectra")
    sp.set_defaults(func=distributed(_cmd_spectrum))
    js = sub.add_parser("js0", parents=[common], help="JS0: mean JS distance between blocks")
    js.add_argument("--axis", default="log", choices=AXES,
                    help="density axis: signed log-magnitude (default; see "
                         "nets.engine.density for why) or linear")
    js.add_argument("--width", type=float, default=None,
                    help="kernel σ: decades on the log axis (default 0.1), a fraction of the "
                         "spectral spread on the linear axis (default 0.01)")
    js.add_argument("--grid", type=int, default=2000,
                    help="grid points on the linear axis (default 2000)")
    js.add_argument("--normalize", default="none", choices=NORMALIZATIONS)
    js.add_argument("--exclude", default=None, metavar="REGEX",
                    help="leave blocks whose name matches REGEX out of the JS statistics "
                         "(to select weight matrices, norm gains, ... use --roles, which reads "
                         "module types instead of names)")
    js.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    js.add_argument("--sensitivity", action="store_true",
                    help="also report JS0 under several widths, grids and normalizations")
    js.set_defaults(func=distributed(_cmd_js0))
    register(sub)
    register_ladder(sub)
    for action in sub.choices.values():
        action.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT_S,
                            metavar="SECONDS",
                            help="under torchrun: seconds a collective waits for the other "
                                 f"ranks before failing (default {DEFAULT_TIMEOUT_S:g})")
    return p


def _check(args: argparse.Namespace) -> None:
    """Refuse bad arguments before anything is loaded or computed (ValueError names the flag)."""
    for label in ("steps", "probes", "threads", "bootstrap", "grid", "chunk_size"):
        v = getattr(args, label, None)
        if v is not None and v < 1:
            raise ValueError(f"--{label.replace('_', '-')} must be >= 1, got {v}")
    if getattr(args, "width", None) is not None and not (np.isfinite(args.width)
                                                         and args.width > 0):
        raise ValueError(f"--width must be a positive fraction of the spread, got {args.width}")
    if getattr(args, "exclude", None) is not None:
        try:
            re.compile(args.exclude)
        except re.error as e:
            raise ValueError(f"--exclude {args.exclude!r} is not a regular expression ({e})"
                             ) from e
    if getattr(args, "compile", False) and args.hvp_mode not in ("auto", "forward"):
        raise ValueError(f"--compile compiles the forward-over-reverse product only; it cannot "
                         f"run with --hvp-mode {args.hvp_mode} (use forward or auto)")
    if hasattr(args, "device"):
        args.torch_device = local_device(args.device)
    if getattr(args, "out", None) is not None:
        check_out_path(args.out)


def _saved(args: argparse.Namespace) -> str:
    """What an interrupted command leaves behind and how to resume it."""
    out = getattr(args, "results_file", None)
    if out is not None:
        if Path(out).exists():
            return f"the probes finished so far are in {out}; rerun the same command to resume"
        return f"no probe had finished, nothing was saved to {out}"
    if getattr(args, "cmd", None) in ("spectrum", "js0"):
        return "nothing was computed yet"
    return ("finished training runs stay in the cache; rerun the same command to resume "
            "from them")


def _run(args: argparse.Namespace) -> int:
    who = "nets"
    args.comm = Communicator()
    try:
        _check(args)
        if getattr(args, "threads", None) is not None:
            torch.set_num_threads(args.threads)
        if launched_by_torchrun():
            if not getattr(args.func, "distributed", False):
                raise ValueError(f"`nets {args.cmd}` does not run distributed; start it "
                                 "without torchrun (one process)")
            args.comm = init_from_env(device=getattr(args, "device", "auto"),
                                      timeout_s=args.dist_timeout)
            who = f"nets (rank {args.comm.rank} of {args.comm.world_size})"
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError, DistributedError) as e:
        print(f"{who}: error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.comm.is_distributed:
            torch.distributed.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nets`` command (also ``python -m nets`` and ``torchrun -m nets``).

    User errors print one ``nets: error: …`` line and exit 2; Ctrl-C prints one line (what was
    saved, how to resume) and exits 130 (:func:`labkit.interrupts.run_interruptible`).

    Args:
        argv: Arguments (default ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    return run_interruptible(lambda: _run(args), prog=f"nets {args.cmd}",
                             saved=lambda: _saved(args))


if __name__ == "__main__":
    sys.exit(main())
