"""Report entries for the SGD-vs-Adam studies on networks: Table 1 / Figure 7 and Post/Pre-LN.

The studies live in nets (`nets.table1`, `nets.perturbation_study`); the drawings in
fig7_gap_vs_js0 and fig_layernorm. Profiles map to `nets.gap` budgets; the tiny one is a
smoke test of the pipeline, not a measurement.
"""

from __future__ import annotations

from nets.gap import GapProfile
from nets.layernorm import PerturbationStudy, perturbation_study
from nets.table1 import Table1, table1

from . import fig7_gap_vs_js0, fig_layernorm
from .registry import FigureSpec, Finding, markdown_table

FAMILY = {"resnet": "CNN", "vgg": "CNN", "mlp": "MLP", "gpt": "Transformer",
          "bert": "Transformer", "vit": "Transformer", "mixer": "MLP-mixer"}


def table1_compute(*, tasks: tuple[str, ...], profile, progress=None) -> Table1:
    """`nets.table1` under a named budget or an explicit `GapProfile` given as a dict."""
    prof = GapProfile(**profile) if isinstance(profile, dict) else profile
    return table1(tasks, prof, progress=progress)


def table1_draw(res: Table1, out_dir):
    return fig7_gap_vs_js0.plot(res.to_dict(), out_dir)


def table1_findings(res: Table1) -> Finding:
    """Does JS0 rank the gaps (Spearman ρ > 0 with its interval above 0)?"""
    flags, parts = [], []
    for b, c in sorted(res.correlations.items()):
        if c is None:
            parts.append(f"B = {b}: too few usable models")
            continue
        flags.append(c.rho > 0 and c.low > 0)
        parts.append(f"B = {b}: ρ = {c.rho:+.2f} (bootstrap {100 * c.level:.0f}% "
                     f"[{c.low:+.2f}, {c.high:+.2f}], n = {c.n})")
    verdict = ("not comparable" if not flags else
               "agrees" if all(flags) else "partly" if any(flags) else "disagrees")
    rows = []
    for rep in res.reports:
        row = {"task": rep.task, "family": FAMILY.get(rep.task, "?"), "js0": rep.js0}
        for r in rep.results:
            row[f"gap{r.batch_size}"] = r.gap
        rows.append(row)
    sizes = sorted({r.batch_size for rep in res.reports for r in rep.results})
    table = markdown_table(rows, [("task", "model", ""), ("family", "family", ""),
                                  ("js0", "JS0", ".3f")]
                           + [(f"gap{b}", f"gap B={b}", ".2f") for b in sizes])
    return Finding("Spearman correlation of JS0 at initialization with the gap "
                   "ln(L_SGD/L_Adam): " + "; ".join(parts) + ".", verdict, table)


TINY_PROFILE = {"name": "tiny", "steps": 6, "sgd_lrs": (0.1,), "adam_lrs": (1e-2,),
                "seeds": (0,), "batch_sizes": (8,), "pool_size": 32, "eval_every": 3,
                "js_steps": 3, "js_probes": 2}

TABLE1 = FigureSpec(
    name="fig7_table1",
    title="Table 1 and Figure 7 — JS0 at initialization against the SGD–Adam gap",
    claim=("JS0 (mean JS distance between blockwise spectra at initialization) is larger for "
           "Transformers than for CNNs, and the larger JS0, the more SGD lags Adam."),
    caption="Tuned SGD (momentum) vs Adam on the zoo: gap ln(L_SGD/L_Adam) against JS0.",
    settings={"tiny": {"tasks": ("mlp", "vgg", "gpt"), "profile": TINY_PROFILE},
              "quick": {"tasks": ("mlp", "vgg", "resnet", "vit", "gpt", "bert", "mixer"),
                        "profile": "quick"},
              "full": {"tasks": ("mlp", "vgg", "resnet", "vit", "gpt", "bert", "mixer"),
                       "profile": "full"}},
    packages=("nets",),
    compute=table1_compute,
    draw=table1_draw,
    findings=table1_findings,
)


def layernorm_draw(res: PerturbationStudy, out_dir):
    return fig_layernorm.plot(res.to_dict(), out_dir)


def layernorm_findings(res: PerturbationStudy) -> Finding:
    """Seed 003: output change under a perturbation grows like N for Post-LN (linear fit wins)
    and like log N for Pre-LN (log fit wins)."""
    post = res.fits_random.get("postln")
    pre = res.fits_random.get("preln")
    flags = []
    if post is not None:
        flags.append(post.r2_linear > post.r2_log)
    if pre is not None:
        flags.append(pre.r2_log > pre.r2_linear)
    rows = [{"variant": v, "kind": kind, "alpha": f.exponent, "r2lin": f.r2_linear,
             "r2log": f.r2_log}
            for kind, fits in (("random δ", res.fits_random), ("one Adam step", res.fits_adam))
            for v, f in fits.items()]
    verdict = "agrees" if flags and all(flags) else ("partly" if any(flags) else "disagrees")
    measured = ("Power-law exponent α of the output change ‖F(x,W) − F(x,W+δ)‖² over depths "
                f"{list(res.depths)}: " + ", ".join(
                    f"{r['variant']}/{r['kind']} α = {r['alpha']:.2f}" for r in rows) + ".")
    return Finding(measured, verdict, markdown_table(rows, [
        ("variant", "variant", ""), ("kind", "perturbation", ""), ("alpha", "α (Δ ∝ N^α)", ".2f"),
        ("r2lin", "R² of Δ ~ N", ".2f"), ("r2log", "R² of Δ ~ ln N", ".2f")]))


def layernorm_compute(*, depths, seeds, draws, progress=None) -> PerturbationStudy:
    return perturbation_study(tuple(depths), seeds=tuple(seeds), draws=draws, progress=progress)


LAYERNORM = FigureSpec(
    name="fig_layernorm",
    title="Seed 003 — Post-LN vs Pre-LN vs Admin: output change against depth",
    claim=("Under a parameter perturbation the output of a Post-LN Transformer changes O(N) with "
           "depth N, a Pre-LN one O(log N); Admin initialization brings Post-LN close to Pre-LN."),
    caption="Output change under a random perturbation and under one Adam step, against depth.",
    settings={"tiny": {"depths": (2, 3, 4), "seeds": (0,), "draws": 1},
              "quick": {"depths": (2, 4, 8, 16, 24), "seeds": (0, 1), "draws": 2},
              "full": {"depths": (2, 4, 6, 8, 12, 16, 24), "seeds": (0, 1, 2), "draws": 3}},
    packages=("nets",),
    compute=layernorm_compute,
    draw=layernorm_draw,
    findings=layernorm_findings,
)

__all__ = ["LAYERNORM", "TABLE1"]
