"""Table 1 and Figure 7 analogue: the tuned SGD–Adam gap against JS0, one panel per batch size.

The numbers come from :func:`nets.studies.table1.table1` (its ``to_dict()``, which is what
``nets table1 --json`` prints); this module owns the figure's spec (settings, verdict rule) and
draws them. Usage::

    nets table1 --profile default --json > runs/table1.json
    python -m figures.fig7_gap_vs_js0 runs/table1.json [more tables (e.g. nets hetero --json)]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from labkit.tables import format_table
from nets.studies.table1 import Table1, correlate, table1
from nets.studies.tasks import zoo_task

from .budgets import FIG7_QUICK, TINY_PROFILE, gap_profile
from .families import family
from .gapstats import describe, not_measurable_reason
from .registry import FigureSpec, Finding
from .style import PALETTE, RC, save
from .verdict import Part, combine, exceeds, explain, groups_ordered


def plot(table: dict, out_dir: Path, *, extra: Sequence[dict] = ()) -> list[Path]:
    """Scatter of the bounded gap (Adam − SGD relative loss reduction; filled: training pool,
    open: held-out) against JS0 (with its bootstrap interval); models listed in a document's
    ``"not_measurable"`` (``{batch size: [tasks]}``) are drawn in grey.

    Args:
        table: ``Table1.to_dict()`` of the main set (the zoo), annotated with Spearman ρ.
        out_dir: Folder for fig7_gap_vs_js0.png/.pdf.
        extra: More ``Table1.to_dict()`` documents drawn in another colour (e.g. scaled MLPs).
    """
    sizes = sorted(int(b) for b in table["spearman"])
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 3.8), squeeze=False)
        for ax, b in zip(axes[0], sizes, strict=True):
            for k, doc in enumerate((table, *extra)):
                for r in doc["rows"]:
                    g = r.get(f"rel_gap_b{b}")
                    if g is None:
                        continue
                    lo, hi = r["js0_low"], r["js0_high"]
                    untrained = r["task"] in doc.get("not_measurable", {}).get(str(b), ())
                    c = "0.65" if untrained else PALETTE[k % len(PALETTE)]
                    ax.errorbar([r["js0"]], [g], xerr=[[r["js0"] - lo], [hi - r["js0"]]],
                                fmt="o", color=c, ms=5, capsize=2)
                    h = r.get(f"heldout_rel_gap_b{b}")
                    if h is not None:
                        ax.plot([r["js0"]], [h], "o", mfc="none", color=c, ms=5)
                    ax.annotate(r["task"], (r["js0"], g), textcoords="offset points",
                                xytext=(4, 3), fontsize=7.5)
            sp = table.get("spearman_rel_gap", {}).get(str(b))
            title = f"batch size {b}"
            if sp:
                lo, hi = sp["interval95_bootstrap"]
                title += (f"\nSpearman ρ = {sp['rho']:+.2f} (95% [{lo:+.2f}, {hi:+.2f}], "
                          f"n={sp['n']} trained)")
            ax.set_title(title)
            ax.axhline(0, color="0.5", lw=0.8)
            ax.set_xlabel("JS0 at initialization")
            ax.set_ylabel("(L_SGD − L_Adam) / L₀  (open: held-out; grey: not trained)")
        return save(fig, Path(out_dir), "fig7_gap_vs_js0")


def compute(*, tasks: tuple[str, ...], profile, progress=None) -> Table1:
    """`nets.studies.table1` of zoo models under a named budget or an explicit one."""
    return table1([zoo_task(t) for t in tasks], gap_profile(profile), progress=progress)


def draw(res: Table1, out_dir: Path) -> list[Path]:
    doc = res.to_dict()
    doc["spearman_rel_gap"] = {}
    doc["not_measurable"] = {str(b): [rep.task for rep in res.reports for r in rep.results
                                      if r.batch_size == b and not_measurable_reason(r)]
                             for b in res.batch_sizes}
    for b in res.batch_sizes:
        c, _ = bounded_correlation(res, b)
        doc["spearman_rel_gap"][str(b)] = None if c is None else {
            "rho": c.rho, "n": c.n, "interval95_bootstrap": [c.low, c.high]}
    return plot(doc, out_dir)


def bounded_correlation(res: Table1, b: int):
    """Spearman ρ(JS0, bounded training gap) at batch size ``b`` over the models whose runs
    trained (`figures.gapstats.not_measurable_reason`), with its bootstrap interval, and the
    names of the models left out."""
    out = [rep.task for rep in res.reports for r in rep.results
           if r.batch_size == b and not_measurable_reason(r) is not None]
    return correlate(res.reports, b, rng=np.random.default_rng([0, b]), metric="rel_gap",
                     exclude=out)


def _js0_rows(res: Table1, block_set: str = "all") -> dict[str, dict[str, tuple]]:
    """``{recipe: {task: (js0, low, high)}}`` on one block set, from each report's JS0 table."""
    out: dict[str, dict[str, tuple]] = {}
    for rep in res.reports:
        for row in rep.js0_table:
            if row["block_set"] == block_set and row.get("js0") is not None:
                out.setdefault(row["recipe"], {})[rep.task] = (row["js0"], row["low"],
                                                               row["high"])
    return out


def family_part(by_task: dict[str, tuple]) -> Part:
    """Part 1: JS0 is larger for every Transformer than for every CNN (bootstrap intervals)."""
    return groups_ordered("JS0 is larger for Transformers than for CNNs",
                          [v[1:] for t, v in by_task.items() if family(t) == "Transformer"],
                          [v[1:] for t, v in by_task.items() if family(t) == "CNN"])


def findings(res: Table1) -> Finding:
    """Parts: (1) JS0 ranks Transformers above CNNs beyond the bootstrap intervals; (2) per batch
    size, Spearman ρ between JS0 and the bounded gap (Adam − SGD relative loss reduction on the
    training pool, `figures.gapstats`) over the models whose runs trained is > 0 with its
    bootstrap interval above 0 ("inconclusive" when the interval contains 0; "not measurable"
    when more than half the models' gaps were not measurable at this budget, see
    `figures.gapstats.not_measurable_reason`, or fewer than 3 remain)."""
    by_task = {rep.task: (rep.js0, rep.js0_low, rep.js0_high) for rep in res.reports}
    parts = [family_part(by_task)]
    for b in res.batch_sizes:
        name = (f"at B = {b}, the larger JS0 the larger the gap (Spearman ρ > 0, bounded gap "
                "on the training pool)")
        reasons = [not_measurable_reason(r) for rep in res.reports for r in rep.results
                   if r.batch_size == b]
        bad = [x for x in reasons if x is not None]
        c, _ = bounded_correlation(res, b)
        if c is None or 2 * len(bad) > len(reasons):
            parts.append(Part(name, "not measurable",
                              f"{len(bad)} of {len(reasons)} models' gaps not measurable"
                              + (f", e.g. {bad[0]}" if bad else "")
                              + ("" if c is not None else "; fewer than 3 distinct points")))
            continue
        parts.append(exceeds(name, c.low, c.high, what=f"ρ = {c.rho:+.2f}, bootstrap "
                             f"{100 * c.level:.0f}% interval (n = {c.n} trained models)"))
    by_recipe = _js0_rows(res)
    invariance = "; ".join(f"{k}: part 1 {family_part(v).outcome}"
                           for k, v in by_recipe.items())
    invariance += "; weight matrices only: " + "; ".join(
        f"{k}: part 1 {family_part(v).outcome}" for k, v in _js0_rows(res, "matrices").items())
    recipes = list(dict.fromkeys(row["recipe"] for rep in res.reports for row in rep.js0_table))
    sizes = sorted({r.batch_size for rep in res.reports for r in rep.results})
    rows = []
    for rep in res.reports:
        for which in ("all", "matrices"):
            row = {"task": rep.task, "family": family(rep.task), "set": which}
            cells = {(x["recipe"], x["block_set"]): x for x in rep.js0_table}
            for k in recipes:
                x = cells.get((k, which))
                row[k] = ("n/a" if x is None or x.get("js0") is None
                          else f"{x['js0']:.3f} [{x['low']:.3f}, {x['high']:.3f}]")
            for r in rep.results:
                b = r.batch_size
                row[f"rel{b}"] = r.rel_gap if which == "all" else None
                row[f"held{b}"] = r.heldout_rel_gap if which == "all" else None
                row[f"gap{b}"] = r.gap if which == "all" else None
                row[f"why{b}"] = ((not_measurable_reason(r) or "measurable")
                                  if which == "all" else "")
            rows.append(row)
    table = format_table(rows, [("task", "model", ""), ("family", "family", ""),
                                ("set", "blocks", "")]
                         + [(k, f"JS0 {k} [95%]", "") for k in recipes]
                         + [c for b in sizes for c in (
                             (f"rel{b}", f"Δ train B={b}", "+.2f"),
                             (f"held{b}", f"Δ held-out B={b}", "+.2f"),
                             (f"gap{b}", f"ln gap B={b}", ".2f"), (f"why{b}", f"B={b} runs", ""))],
                         markdown=True)
    measured = (explain(parts) + " Gaps: " + " | ".join(
        f"{rep.task}: {describe(rep.results)}" for rep in res.reports)
        + f". Recipe invariance of part 1 — {invariance or 'no recipe table'}.")
    return Finding(measured, combine(parts), table, tuple(parts))


SPEC = FigureSpec(
    name="fig7_table1",
    title="Table 1 and Figure 7 — JS0 at initialization against the SGD–Adam gap",
    claim=("JS0 (mean JS distance between blockwise spectra at initialization) is larger for "
           "Transformers than for CNNs, and the larger JS0, the more SGD lags Adam."),
    caption=("Tuned SGD (momentum) vs Adam on the zoo: the bounded gap Δ = (L_SGD − L_Adam)/L₀ "
             "(Adam's relative loss reduction minus SGD's; filled: training pool, open: held-out "
             "data) against JS0 (default log recipe, bootstrap intervals over probes). The table "
             "gives Δ on both and the old ln(L_SGD/L_Adam)."),
    settings={"tiny": {"tasks": ("mlp", "vgg", "gpt"), "profile": TINY_PROFILE},
              "quick": {"tasks": ("mlp", "vgg", "resnet", "vit", "gpt", "bert", "mixer"),
                        "profile": FIG7_QUICK},
              "full": {"tasks": ("mlp", "vgg", "resnet", "vit", "gpt", "bert", "mixer"),
                       "profile": "full"}},
    packages=("nets",),
    compute=compute,
    draw=draw,
    findings=findings,
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    docs = [json.loads(Path(p).read_text()) for p in argv]
    out = Path(__file__).resolve().parent / "out"
    print("\n".join(str(p) for p in plot(docs[0], out, extra=docs[1:])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
