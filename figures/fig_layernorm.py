"""Post-LN / Pre-LN / Admin: output change against depth (Liu et al. 2020, Figure 4 analogue).

Draws :func:`nets.studies.layernorm.perturbation_study` (its ``to_dict()``) and owns the report
entry ``SPEC`` (``python -m figures --only fig_layernorm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from labkit.tables import format_table
from nets.studies.layernorm import PerturbationStudy, fit_growth, perturbation_study

from .registry import FigureSpec, Finding
from .style import RC, save
from .verdict import Part, combine, exceeds_over_seeds, explain

LABELS = {"postln": "Post-LN", "preln": "Pre-LN", "admin": "Admin"}


def plot(study: dict, out_dir: Path) -> list[Path]:
    """Two log-log panels (random perturbation, one Adam step) of Δ against depth N."""
    depths = study["depths"]
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.6))
        for ax, key, fits, title in (
                (axes[0], "random", "fits_random",
                 f"random δ = {study['epsilon']:g}·N(0, I)"),
                (axes[1], "adam_step", "fits_adam", f"one Adam step, lr = {study['lr']:g}")):
            for v, vals in study[key].items():
                a = study[fits][v]["exponent"]
                ax.plot(depths, vals, "o-", label=f"{LABELS.get(v, v)} (α = {a:.2f})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(depths, [str(d) for d in depths])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("layers N")
            ax.set_ylabel("mean (F(x,W) − F(x,W+δ))²")
            ax.set_title(title)
            ax.legend()
        return save(fig, Path(out_dir), "fig_layernorm")


@dataclass(frozen=True)
class LayerNormResult:
    """The study per model seed, and pooled (Δ averaged over seeds, then fitted)."""

    pooled: PerturbationStudy
    per_seed: tuple[PerturbationStudy, ...]


def compute(*, depths, seeds, draws, progress=None) -> LayerNormResult:
    """`perturbation_study` once per seed (each seed's draws are seeded by seed and depth, so
    the pooled Δ equals the study over all seeds), pooled by averaging Δ over seeds."""
    per = tuple(perturbation_study(tuple(depths), seeds=(s,), draws=draws, progress=progress)
                for s in seeds)
    first = per[0]
    mean = {kind: {v: tuple(np.mean([getattr(p, kind)[v] for p in per], axis=0).tolist())
                   for v in getattr(first, kind)} for kind in ("random", "adam_step")}
    pooled = PerturbationStudy(first.depths, first.epsilon, first.lr, mean["random"],
                               mean["adam_step"],
                               {v: fit_growth(first.depths, x) for v, x in mean["random"].items()},
                               {v: fit_growth(first.depths, x)
                                for v, x in mean["adam_step"].items()})
    return LayerNormResult(pooled, per)


def draw(res: LayerNormResult, out_dir: Path) -> list[Path]:
    return plot(res.pooled.to_dict(), out_dir)


def parts_of(per_seed: tuple[PerturbationStudy, ...]) -> list[Part]:
    """For the random perturbation and for one Adam step: (a) Post-LN's Δ is fitted better by
    N than by ln N, (b) Pre-LN's better by ln N than by N, (c) Admin's growth exponent is closer
    to Pre-LN's than Post-LN's is; each judged on the per-seed differences (≥ 3 seeds)."""
    parts = []
    for label, attr in (("random perturbation", "fits_random"), ("one Adam step", "fits_adam")):
        fits = [getattr(p, attr) for p in per_seed]
        if not all({"postln", "preln", "admin"} <= set(f) for f in fits):
            parts.append(Part(f"{label}: Post-LN, Pre-LN and Admin measured", "not measurable",
                              "a variant is missing from the settings"))
            continue
        parts.append(exceeds_over_seeds(
            f"{label}: Post-LN's output change grows like N (R² of Δ~N minus R² of Δ~ln N)",
            [f["postln"].r2_linear - f["postln"].r2_log for f in fits]))
        parts.append(exceeds_over_seeds(
            f"{label}: Pre-LN's grows like ln N (R² of Δ~ln N minus R² of Δ~N)",
            [f["preln"].r2_log - f["preln"].r2_linear for f in fits]))
        parts.append(exceeds_over_seeds(
            f"{label}: Admin brings Post-LN's growth exponent close to Pre-LN's "
            "(|α_post − α_pre| − |α_admin − α_pre|)",
            [abs(f["postln"].exponent - f["preln"].exponent)
             - abs(f["admin"].exponent - f["preln"].exponent) for f in fits]))
    return parts


def findings(res: LayerNormResult) -> Finding:
    """Every part of the claim, for both perturbations (see `parts_of`)."""
    parts = parts_of(res.per_seed)
    st = res.pooled
    rows = [{"variant": v, "kind": kind, "alpha": f.exponent, "r2lin": f.r2_linear,
             "r2log": f.r2_log}
            for kind, fits in (("random δ", st.fits_random), ("one Adam step", st.fits_adam))
            for v, f in fits.items()]
    measured = (explain(parts) + " Power-law exponent α of the output change "
                f"‖F(x,W) − F(x,W+δ)‖² over depths {list(st.depths)} (pooled over "
                f"{len(res.per_seed)} seeds): " + ", ".join(
                    f"{r['variant']}/{r['kind']} α = {r['alpha']:.2f}" for r in rows) + ".")
    return Finding(measured, combine(parts), format_table(rows, [
        ("variant", "variant", ""), ("kind", "perturbation", ""), ("alpha", "α (Δ ∝ N^α)", ".2f"),
        ("r2lin", "R² of Δ ~ N", ".2f"), ("r2log", "R² of Δ ~ ln N", ".2f")], markdown=True),
        tuple(parts))


SPEC = FigureSpec(
    name="fig_layernorm",
    title="Post-LN vs Pre-LN vs Admin — output change against depth (Liu et al. 2020)",
    claim=("Under a parameter perturbation the output of a Post-LN Transformer changes O(N) with "
           "depth N, a Pre-LN one O(log N); Admin initialization brings Post-LN close to Pre-LN."),
    caption="Output change under a random perturbation and under one Adam step, against depth.",
    settings={"tiny": {"depths": (2, 3, 4), "seeds": (0,), "draws": 1},
              "quick": {"depths": (2, 4, 8, 16, 24), "seeds": (0, 1, 2), "draws": 2},
              "full": {"depths": (2, 4, 6, 8, 12, 16, 24), "seeds": (0, 1, 2), "draws": 3}},
    packages=("nets",),
    compute=compute,
    draw=draw,
    findings=findings,
)
