"""Command line for the training studies (registered into ``nets`` by :func:`register`).

Examples::

    nets gap --model gpt --quick               # tuned SGD vs Adam at two batch sizes, and JS0
    nets gap --model vgg --profile default --json
    nets table1 --profile default              # Table 1 / Figure 7 data for the whole zoo
    nets hetero --scales 1 3 10 30             # Figure 5(a): scaled MLP
    nets lnstudy --depths 2 4 8 16 24          # Post-LN / Pre-LN / Admin output change
    nets finetune                              # Figure 6 analogue
    nets advise --model my_module:make_model   # is SGD likely to lag Adam on my model?
    nets quadratic-spectra                     # regenerate quadlab's measured quadratic cases

Training results are cached under ``--cache`` (default ``$NETS_CACHE`` or ``runs/cache``) keyed
by their settings and the code version; rerunning a command reuses (and an interrupted one
resumes from) the runs already stored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from labkit.jsonio import as_float, dumps, loads
from labkit.progress import Progress
from labkit.tables import format_table
from nets.cli.common import add_device_argument, add_model_seed_argument, distributed
from nets.cli.tasks import TASK_NAMES_HELP, task_from_name
from nets.studies.advise import advise, load_evidence, write_evidence
from nets.studies.advise_ladder import advise_ladder
from nets.studies.finetune import finetune_study
from nets.studies.gap import PROFILES, GapReport, measure_gap
from nets.studies.layernorm import perturbation_study
from nets.studies.predictor import load_ladder_evidence
from nets.studies.quadratic_spectra import OUT, write_measured_spectra
from nets.studies.table1 import table1
from nets.studies.tasks import layernorm_task, scaled_mlp_task, zoo_task
from nets.zoo import models as zoo
from nets.zoo.factory import resolve_model
from nets.zoo.scaled_mlp import layer_scales

__all__ = ["register"]


def _profile(args):
    name = "quick" if getattr(args, "quick", False) else args.profile
    return PROFILES[name]


def _bar(args) -> bool | None:
    """Progress bar: on a terminal (``None``), unless ``--quiet`` or not rank 0."""
    return False if args.quiet or args.comm.rank != 0 else None


def _runs_per_task(profile, n_batch: int) -> int:
    return n_batch * (len(profile.sgd_lrs) + len(profile.adam_lrs)) * len(profile.seeds) + 1


def _gap_rows(rep: GapReport) -> list[dict]:
    rows = []
    for r in rep.results:
        rows.append({"task": rep.task, "B": r.batch_size, "js0": rep.js0,
                     "sgd_lr": r.sgd.lr, "sgd_loss": r.sgd.final_loss,
                     "adam_lr": r.adam.lr, "adam_loss": r.adam.final_loss, "gap": r.gap,
                     "rel": r.rel_gap, "held": r.heldout_rel_gap,
                     "edge": ("S" if r.sgd.at_edge else "") + ("A" if r.adam.at_edge else ""),
                     "div": sum(g.diverged for g in r.sgd.grid + r.adam.grid)})
    return rows


GAP_COLUMNS = [("task", "task", ""), ("B", "batch", "d"), ("js0", "JS0", ".3f"),
               ("sgd_lr", "SGD lr", ".3g"), ("sgd_loss", "SGD loss", ".4f"),
               ("adam_lr", "Adam lr", ".3g"), ("adam_loss", "Adam loss", ".4f"),
               ("gap", "gap ln(S/A)", ".3f"), ("rel", "Δ (S−A)/L0", "+.3f"),
               ("held", "Δ held-out", "+.3f"), ("edge", "lr@edge", ""),
               ("div", "diverged lrs", "d")]


def _cmd_gap(args) -> int:
    profile = _profile(args)
    sizes = tuple(args.batch_sizes) if args.batch_sizes else profile.batch_sizes
    task = task_from_name(args.model, cache_dir=args.cache, model_seed=args.model_seed)
    total = _runs_per_task(profile, len(sizes))
    with Progress(total, f"gap {args.model}", enabled=_bar(args)) as bar:
        rep = measure_gap(task, profile, batch_sizes=sizes, cache_dir=args.cache,
                          progress=bar.advance, comm=args.comm, device=args.torch_device)
    if args.comm.rank != 0:
        return 0
    if args.json:
        print(dumps(rep.to_dict(), indent=1))
        return 0
    print(f"# {args.model}: profile {profile.name} ({profile.steps} steps, seeds "
          f"{list(profile.seeds)}); gap = ln(L_SGD / L_Adam) of the tuned final training "
          "losses (> 0: SGD lags)")
    print(f"JS0 = {rep.js0:.4f}  (95% bootstrap over probes [{rep.js0_low:.4f}, "
          f"{rep.js0_high:.4f}])")
    print(format_table(_gap_rows(rep), GAP_COLUMNS))
    return 0


def _table1(args, tasks: list, profile, label: str):
    """:func:`nets.studies.table1.table1` of ``tasks`` with a progress bar (sharded under
    torchrun)."""
    total = len(tasks) * _runs_per_task(profile, len(profile.batch_sizes))
    with Progress(total, label, enabled=_bar(args)) as bar:
        return table1(tasks, profile, cache_dir=args.cache, progress=bar.advance, comm=args.comm,
                      device=args.torch_device)


def _cmd_table1(args) -> int:
    profile = _profile(args)
    tasks = ([task_from_name(t, cache_dir=args.cache) for t in args.tasks] if args.tasks
             else [zoo_task(m) for m in zoo.MODELS])
    tab = _table1(args, tasks, profile, "table1")
    if args.comm.rank != 0:
        return 0
    doc = tab.to_dict()
    if args.write_evidence:
        write_evidence(doc, args.write_evidence)
    if args.json:
        print(dumps(doc, indent=1))
        return 0
    rows = [r for rep in tab.reports for r in _gap_rows(rep)]
    print(f"# Table 1 (profile {profile.name}): JS0 at initialization and the tuned SGD–Adam "
          "gap ln(L_SGD / L_Adam)")
    print(format_table(rows, GAP_COLUMNS))
    for b, c in tab.correlations.items():
        if c is None:
            print(f"B={b}: too few usable tasks for a rank correlation "
                  f"(excluded: {tab.excluded[b]})")
            continue
        print(f"B={b}: Spearman rho(JS0, gap) = {c.rho:+.3f} (n={c.n}, p={c.pvalue:.3g}); "
              f"95% bootstrap [{c.low:+.3f}, {c.high:+.3f}], Fisher z [{c.fisher_low:+.3f}, "
              f"{c.fisher_high:+.3f}]" + (f"; excluded {tab.excluded[b]}"
                                          if tab.excluded[b] else ""))
    return 0


def _cmd_hetero(args) -> int:
    profile = _profile(args)
    tasks = [scaled_mlp_task(s) for s in args.scales]
    tab = _table1(args, tasks, profile, "hetero")
    if args.comm.rank != 0:
        return 0
    doc = tab.to_dict()
    doc["scales"] = {t.label: list(layer_scales(s))
                     for t, s in zip(tasks, args.scales, strict=True)}
    if args.json:
        print(dumps(doc, indent=1))
        return 0
    print(f"# Figure 5(a): MLP with layer scales c = (S^-1, S^-1/3, S^1/3, S); profile "
          f"{profile.name}")
    print(format_table([r for rep in tab.reports for r in _gap_rows(rep)], GAP_COLUMNS))
    for b, c in tab.correlations.items():
        if c is not None:
            print(f"B={b}: Spearman rho(JS0, gap) = {c.rho:+.3f} over {c.n} scalings")
    return 0


def _cmd_lnstudy(args) -> int:
    n = len(args.variants) * len(args.depths)
    with Progress(n, "lnstudy", enabled=_bar(args)) as bar:
        st = perturbation_study(args.depths, variants=args.variants,
                                seeds=tuple(range(args.seeds)), epsilon=args.epsilon,
                                lr=args.lr, draws=args.draws, progress=bar.advance,
                                device=args.torch_device)
    doc = st.to_dict()
    if args.gap_depth:
        profile = _profile(args)
        doc["gap"] = {}
        for v in args.variants:
            rep = measure_gap(layernorm_task(v, args.gap_depth), profile, cache_dir=args.cache,
                              device=args.torch_device)
            doc["gap"][v] = rep.to_dict()
    if args.json:
        print(dumps(doc, indent=1))
        return 0
    rows = []
    for v in args.variants:
        for i, d in enumerate(st.depths):
            rows.append({"variant": v, "N": d, "random": st.random[v][i],
                         "adam": st.adam_step[v][i]})
    print(f"# output change mean (F(x,W) - F(x,W+delta))^2: random delta = {st.epsilon:g} "
          f"N(0, I) on layer weights; one Adam step lr={st.lr:g}")
    print(format_table(rows, [("variant", "variant", ""), ("N", "N", "d"),
                              ("random", "random", ".4g"), ("adam", "Adam step", ".4g")]))
    fits = [{"variant": v, "which": w, "alpha": f.exponent, "r2_lin": f.r2_linear,
             "r2_log": f.r2_log}
            for v in args.variants
            for w, f in (("random", st.fits_random[v]), ("adam", st.fits_adam[v]))]
    print("\ngrowth: Delta ~ N^alpha (least squares in log-log); R^2 of Delta ~ N and Delta ~ ln N")
    print(format_table(fits, [("variant", "variant", ""), ("which", "perturbation", ""),
                              ("alpha", "alpha", ".3f"), ("r2_lin", "R2 linear", ".3f"),
                              ("r2_log", "R2 log", ".3f")]))
    if args.gap_depth:
        print(f"\nJS0 and gap at depth {args.gap_depth}:")
        for v in args.variants:
            g = doc["gap"][v]
            print(f"  {v:6s} JS0 = {g['js0']:.3f}  gap = " + ", ".join(
                f"B={b}: {x:.3f}" for b, x in g["gap"].items()))
    return 0


def _cmd_finetune(args) -> int:
    profile = _profile(args)
    total = 2 * _runs_per_task(profile, len(profile.batch_sizes))
    with Progress(total, "finetune", enabled=_bar(args)) as bar:
        st = finetune_study(profile, cache_dir=args.cache, progress=bar.advance, comm=args.comm,
                            device=args.torch_device)
    if args.comm.rank != 0:
        return 0
    if args.json:
        print(dumps(st.to_dict(), indent=1))
        return 0
    print("# Figure 6 analogue: GPT on the dialect corpus from scratch vs fine-tuned from the "
          "Adam-pretrained checkpoint; JS at the starting point")
    print(format_table(st.rows(), [("start", "start", ""), ("B", "batch", "d"),
                                   ("js", "JS at start", ".3f"), ("sgd_loss", "SGD loss", ".4f"),
                                   ("adam_loss", "Adam loss", ".4f"),
                                   ("gap", "gap ln(S/A)", ".3f")]))
    return 0


def _is_ladder_evidence(path: str) -> bool:
    try:
        return "validation" in loads(Path(path).read_text())
    except (OSError, ValueError, TypeError):
        return False  # load_evidence says what is wrong with it


def _cmd_advise(args) -> int:
    model, loss_fn, data = resolve_model(args.model, seed=args.model_seed,
                                         device=args.torch_device)
    if args.evidence is None or _is_ladder_evidence(args.evidence):
        return _advise_ladder(args, model, loss_fn, data)
    ev = load_evidence(args.evidence)
    adv = advise(model, loss_fn, data, evidence=ev, batch_size=args.batch_size,
                 seed=args.seed)
    if args.json:
        print(dumps(adv.to_dict(), indent=1))
        return 0
    print(adv.message)
    sizes = sorted(int(b) for b in ev["spearman"])
    cols = [("task", "evidence model", ""), ("js0", "JS0", ".3f")]
    cols += [(f"gap_b{b}", f"gap B={b}", ".3f") for b in sizes]
    rows = [dict(r) for r in adv.evidence]
    rows.append({"task": "YOUR MODEL", "js0": adv.js0,
                 **{f"gap_b{b}": "?" for b in sizes}})
    print(f"\nevidence (profile {ev.get('profile')}, JS0 with {ev['js_settings']['steps']} "
          f"Lanczos steps x {ev['js_settings']['probes']} probes; gap = ln(L_SGD / L_Adam)):")
    print(format_table(sorted(rows, key=lambda r: r["js0"]), cols))
    return 0


def _advise_ladder(args, model, loss_fn, data) -> int:
    if args.batch_size is not None:
        raise ValueError("--batch-size applies to Table 1 evidence only: the ladder predictor "
                         "was validated at one batch size (printed with the advice)")
    ev = load_ladder_evidence(args.evidence)
    adv = advise_ladder(model, loss_fn, data, evidence=ev, seed=args.seed)
    if args.json:
        print(dumps(adv.to_dict(), indent=1))
        return 0
    print(adv.message)
    names = {**{n: "selection" for n in adv.selection["points"]},
             **{n: "held out" for n in adv.held_out["points"]}}
    rows = []
    for r in ev["records"]:
        if r["name"] not in names:
            continue
        g = r["gap"][str(adv.batch_size)]
        rows.append({"rung": r["name"], "role": names[r["name"]], "params": r["parameters"],
                     "value": as_float(r["candidates"][adv.candidate]["value"]),
                     "gap": as_float(g["gap"])})
    rows.append({"rung": "YOUR MODEL", "role": "", "params": sum(
        p.numel() for p in model.parameters()), "value": adv.value, "gap": "?"})
    print(f"\nevidence: the ladder points the predictor rests on ({adv.candidate}; gap = "
          f"ln(L_SGD / L_Adam) at B = {adv.batch_size}):")
    print(format_table(rows, [("rung", "ladder rung", ""), ("role", "role", ""),
                              ("params", "parameters", "d"), ("value", adv.candidate, ".4g"),
                              ("gap", "gap", ".3f")]))
    return 0


def _cmd_quadratic_spectra(args: argparse.Namespace) -> int:
    print(write_measured_spectra(args.out, size=args.size, steps=args.steps,
                                 probes=args.probes, seed=args.seed))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="default", choices=tuple(PROFILES),
                   help="budget (default: default; see docs/studies.md)")
    p.add_argument("--quick", action="store_true", help="the tiny 'quick' profile")
    p.add_argument("--cache", default=None, help="cache folder (default $NETS_CACHE or "
                   "runs/cache)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: small models run best single-threaded)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(p)


def _with_threads(func):
    def run(args):
        if args.threads < 1:
            raise ValueError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
        return func(args)

    return run


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training subcommands to the ``nets`` sub-parser collection ``sub``.

    Args:
        sub: The ``add_subparsers()`` collection of the ``nets`` parser.
    """
    g = sub.add_parser("gap", help="tuned SGD (momentum) vs Adam gap and JS0 of one model")
    g.add_argument("--model", required=True,
                   help=TASK_NAMES_HELP)
    g.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                   help="override the profile's batch sizes")
    add_model_seed_argument(g)
    _common(g)
    g.set_defaults(func=distributed(_with_threads(_cmd_gap)))
    t = sub.add_parser("table1", help="Table 1 / Figure 7: JS0 and gap for many models, "
                       "with Spearman rho")
    t.add_argument("--tasks", nargs="+", default=None, help="task names (default: the zoo)")
    t.add_argument("--write-evidence", default=None, metavar="PATH",
                   help="also write the table as an evidence file for `nets advise`")
    _common(t)
    t.set_defaults(func=distributed(_with_threads(_cmd_table1)))
    h = sub.add_parser("hetero", help="Figure 5(a): JS0 and gap of the MLP with scaled layers")
    h.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0],
                   help="heterogeneity scales S >= 1 (default 1 3 10 30)")
    _common(h)
    h.set_defaults(func=distributed(_with_threads(_cmd_hetero)))
    ln = sub.add_parser("lnstudy", help="Post-LN / Pre-LN / Admin: output change vs depth, "
                        "JS0 and gap")
    ln.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6, 8, 12, 16, 24])
    ln.add_argument("--variants", nargs="+", default=["postln", "preln", "admin"],
                    choices=["postln", "preln", "admin"])
    ln.add_argument("--seeds", type=int, default=3, help="model seeds averaged (default 3)")
    ln.add_argument("--draws", type=int, default=3, help="random perturbations per model")
    ln.add_argument("--epsilon", type=float, default=1e-2, help="random perturbation scale")
    ln.add_argument("--lr", type=float, default=1e-3, help="Adam step size of the update")
    ln.add_argument("--gap-depth", type=int, default=0,
                    help="also measure JS0 and the SGD-Adam gap at this depth (0: skip)")
    _common(ln)
    ln.set_defaults(func=_with_threads(_cmd_lnstudy))
    f = sub.add_parser("finetune", help="Figure 6 analogue: pretrain with Adam, fine-tune")
    _common(f)
    f.set_defaults(func=distributed(_with_threads(_cmd_finetune)))
    a = sub.add_parser("advise", help="is SGD likely to lag Adam on my model? (the ladder's "
                       "validated predictor, or JS0 vs Table 1 evidence)")
    a.add_argument("--model", required=True, metavar="MODEL",
                   help="a zoo model or a factory MODULE:FUNCTION returning (model, loss_fn, "
                        "data); module on the path or path/to/file.py")
    add_device_argument(a)
    add_model_seed_argument(a)
    a.add_argument("--evidence", default=None,
                   help="evidence file (default: the packaged ladder evidence, "
                        "nets/studies/evidence_ladder.json, and its validated predictor; a "
                        "`nets table1 --write-evidence` file gives the JS0 nearest-neighbour "
                        "advice)")
    a.add_argument("--batch-size", type=int, default=None,
                   help="Table 1 evidence: batch size to compare with (default: the largest)")
    a.add_argument("--seed", type=int, default=0, help="probe seed")
    a.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=_with_threads(_cmd_advise))
    q = sub.add_parser("quadratic-spectra", help="regenerate quadlab's measured quadratic cases "
                       "(blockwise spectra of the zoo's gpt and resnet)")
    q.add_argument("--out", default=str(OUT), help="data file (default: quadlab's "
                   "data/measured_spectra.json)")
    q.add_argument("--size", type=int, default=25, help="eigenvalues per block (default 25)")
    q.add_argument("--steps", type=int, default=30, help="Lanczos steps (default 30)")
    q.add_argument("--probes", type=int, default=5, help="probe vectors (default 5)")
    q.add_argument("--seed", type=int, default=0, help="model and probe seed (default 0)")
    q.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    q.set_defaults(func=_with_threads(_cmd_quadratic_spectra))
