"""Report entries for the SGD-vs-Adam studies on networks: Table 1 / Figure 7 and Post/Pre-LN.

The studies live in nets (`nets.studies.table1`, `nets.perturbation_study`); the drawings in
fig7_gap_vs_js0 and fig_layernorm. Profiles map to `nets.studies.gap` budgets; the tiny one is a
smoke test of the pipeline, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labkit.tables import format_table
from nets import zoo
from nets.engine.spectrum import blockwise_spectrum
from nets.studies.finetune import PRETRAIN_STEPS, FinetuneStudy, finetune_study
from nets.studies.gap import GapProfile, measure_gap
from nets.studies.layernorm import PerturbationStudy, perturbation_study
from nets.studies.table1 import Table1, table1
from nets.studies.tasks import scaled_mlp_task, zoo_task

from . import fig5_mlp_mixer, fig6_finetune, fig7_gap_vs_js0, fig_layernorm
from .registry import FigureSpec, Finding

FAMILY = {"resnet": "CNN", "vgg": "CNN", "mlp": "MLP", "gpt": "Transformer",
          "bert": "Transformer", "vit": "Transformer", "mixer": "MLP-mixer"}


def _gap_profile(profile: str | dict) -> str | GapProfile:
    """A profile name of `nets.studies.gap.PROFILES`, or an explicit `GapProfile` given as a dict
    (the
    settings must stay JSON-able for the cache key)."""
    return GapProfile(**profile) if isinstance(profile, dict) else profile


def table1_compute(*, tasks: tuple[str, ...], profile, progress=None) -> Table1:
    """`nets.studies.table1` of the zoo models named in `tasks`, under a named budget or an
    explicit `GapProfile` given as a dict."""
    prof = _gap_profile(profile)
    return table1([zoo_task(t) for t in tasks], prof, progress=progress)


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
    table = format_table(rows, [("task", "model", ""), ("family", "family", ""),
                                  ("js0", "JS0", ".3f")]
                           + [(f"gap{b}", f"gap B={b}", ".2f") for b in sizes], markdown=True)
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
    return Finding(measured, verdict, format_table(rows, [
        ("variant", "variant", ""), ("kind", "perturbation", ""), ("alpha", "α (Δ ∝ N^α)", ".2f"),
        ("r2lin", "R² of Δ ~ N", ".2f"), ("r2log", "R² of Δ ~ ln N", ".2f")], markdown=True))


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



# ------------------------------------------------------------------ Figure 5: dialled heterogeneity
@dataclass(frozen=True)
class HeteroMixer:
    """Figure 5's data: Table 1 of the scaled MLPs, and the mixer's spectra and gap report."""

    scaled: Table1
    scales: tuple[float, ...]
    mixer_spectra: dict
    mixer_report: object


def hetero_compute(*, scales, profile, mixer_steps: int, mixer_probes: int,
                   progress=None) -> HeteroMixer:
    """Scaled MLPs (layer scales S^(-1, -1/3, 1/3, 1), see `nets.zoo.scaled_mlp`) and MLP-mixer."""
    prof = _gap_profile(profile)
    scaled = table1([scaled_mlp_task(s) for s in scales], prof, progress=progress)
    model, loss_fn, data = zoo.load("mixer", seed=0)
    spectra = blockwise_spectrum(model, loss_fn, data, lanczos_steps=mixer_steps,
                                 probes=mixer_probes, seed=0)
    return HeteroMixer(scaled, tuple(scales), spectra,
                       measure_gap(zoo_task("mixer"), prof, progress=progress))


def hetero_draw(res: HeteroMixer, out_dir):
    return fig5_mlp_mixer.plot(res.scaled.to_dict(), out_dir, mixer_spectra=res.mixer_spectra,
                               mixer_report=res.mixer_report.to_dict())


def hetero_findings(res: HeteroMixer) -> Finding:
    """Paper: the larger the layer-scale spread S, the more SGD lags (gap grows with S); the
    MLP-mixer is heterogeneous and SGD lags on it."""
    gaps = {}
    for rep in res.scaled.reports:
        for r in rep.results:
            gaps.setdefault(r.batch_size, []).append(r.gap)
    grows = [g[-1] > g[0] for g in gaps.values() if len(g) >= 2 and np.isfinite(g).all()]
    mixer = {r.batch_size: r.gap for r in res.mixer_report.results}
    lags = [g > 0 for g in mixer.values() if np.isfinite(g)]
    flags = grows + lags
    verdict = "agrees" if flags and all(flags) else ("partly" if any(flags) else "disagrees")
    measured = ("Scaled MLP, gap ln(L_SGD/L_Adam) from S = "
                f"{res.scales[0]:g} to {res.scales[-1]:g}: "
                + "; ".join(f"B = {b}: {g[0]:.2f} → {g[-1]:.2f}" for b, g in sorted(gaps.items()))
                + ". JS0: " + " → ".join(f"{rep.js0:.3f}" for rep in res.scaled.reports)
                + ". MLP-mixer gap: " + ", ".join(f"B = {b}: {g:.2f}"
                                                  for b, g in sorted(mixer.items())) + ".")
    return Finding(measured, verdict)


HETERO = FigureSpec(
    name="fig5_mlp_mixer",
    title="Figure 5 — dialling heterogeneity up in an MLP; the MLP-mixer",
    claim=("Scaling the layers of a 4-layer MLP makes its blockwise spectra heterogeneous and "
           "SGD falls further behind Adam as the scaling grows; the MLP-mixer's initial Hessian is "
           "block-heterogeneous and SGD lags Adam on it."),
    caption=("(a) gap and JS0 of the MLP with layer scales S^(-1, -1/3, 1/3, 1); (b) blockwise "
             "spectra of the MLP-mixer; (c) its tuned training curves."),
    settings={"tiny": {"scales": (1, 10), "profile": TINY_PROFILE, "mixer_steps": 3,
                       "mixer_probes": 1},
              "quick": {"scales": (1, 3, 10, 30), "profile": "quick", "mixer_steps": 20,
                        "mixer_probes": 3},
              "full": {"scales": (1, 3, 10, 30), "profile": "full", "mixer_steps": 100,
                       "mixer_probes": 10}},
    packages=("nets",),
    compute=hetero_compute,
    draw=hetero_draw,
    findings=hetero_findings,
)



# ------------------------------------------------------------------ Figure 6: fine-tuning
def finetune_compute(*, profile, pretrain_steps: int, progress=None) -> FinetuneStudy:
    """`nets.studies.finetune.finetune_study`: GPT on the dialect corpus, from scratch vs
    fine-tuned."""
    prof = _gap_profile(profile)
    return finetune_study(prof, pretrain_steps=pretrain_steps, progress=progress)


def finetune_draw(res: FinetuneStudy, out_dir):
    return fig6_finetune.plot(res.to_dict(), out_dir)


def finetune_findings(res: FinetuneStudy) -> Finding:
    """Paper: the pretrained model is less heterogeneous (smaller JS at the start) and SGD's
    gap to Adam is smaller when fine-tuning than when training from scratch."""
    js_falls = res.finetune.js0 < res.scratch.js0
    pairs = [(a.batch_size, a.gap, b.gap)
             for a, b in zip(res.scratch.results, res.finetune.results, strict=True)]
    shrinks = [ft < sc for _, sc, ft in pairs if np.isfinite(sc) and np.isfinite(ft)]
    flags = [js_falls, *shrinks]
    verdict = "agrees" if all(flags) else ("partly" if any(flags) else "disagrees")
    measured = (f"JS at the starting point: {res.scratch.js0:.3f} from scratch, "
                f"{res.finetune.js0:.3f} at the pretrained checkpoint. Gap ln(L_SGD/L_Adam): "
                + "; ".join(f"B = {b}: {sc:.2f} from scratch, {ft:.2f} fine-tuning"
                            for b, sc, ft in pairs) + ".")
    rows = [{"start": r["start"], "B": r["B"], "js": r["js"], "sgd": r["sgd_loss"],
             "adam": r["adam_loss"], "gap": r["gap"]} for r in res.rows()]
    return Finding(measured, verdict, format_table(rows, [
        ("start", "start", ""), ("B", "B", "d"), ("js", "JS at start", ".3f"),
        ("sgd", "L_SGD", ".3g"), ("adam", "L_Adam", ".3g"), ("gap", "gap", ".2f")], markdown=True))


FINETUNE = FigureSpec(
    name="fig6_finetune",
    title="Figure 6 analogue — fine-tuning a pretrained GPT vs training from scratch",
    claim=("A pretrained Transformer's Hessian is less block-heterogeneous than at random "
           "initialization, and SGD lags Adam less when fine-tuning it than when training from "
           "scratch (the paper: GPT-2 fine-tuned on Alpaca)."),
    caption=("The zoo GPT pretrained locally with Adam on the grammar corpus, then trained on a "
             "dialect of it (letters a/o swapped), against the same model from random "
             "initialization: JS at the starting point, tuned gap per batch size, tuned curves."),
    settings={"tiny": {"profile": TINY_PROFILE, "pretrain_steps": 15},
              # the 60-step "quick" gap budget is too short for this gap (tuned rates at the grid
              # edges, see README); "lite" (300 steps, 4 rates, one seed) takes ~6 min here
              "quick": {"profile": "lite", "pretrain_steps": PRETRAIN_STEPS},
              "full": {"profile": "full", "pretrain_steps": PRETRAIN_STEPS}},
    packages=("nets",),
    compute=finetune_compute,
    draw=finetune_draw,
    findings=finetune_findings,
)

__all__ = ["FINETUNE", "HETERO", "LAYERNORM", "TABLE1"]
