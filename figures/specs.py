"""The registry of figures, in report order: each figure module owns its ``SPEC``."""

from __future__ import annotations

from . import (
    fig1_full_spectra,
    fig2_hessian_structure,
    fig5_mlp_mixer,
    fig6_finetune,
    fig7_gap_vs_js0,
    fig8_quadratic,
    fig34_blockwise,
    fig_batch,
    fig_eps,
    fig_ladder,
    fig_layernorm,
    fig_newton,
    proofs_verdicts,
)
from .registry import FigureSpec

FIGURES: dict[str, FigureSpec] = {spec.name: spec for spec in (
    fig1_full_spectra.SPEC,
    fig2_hessian_structure.SPEC,
    fig34_blockwise.SPEC,
    fig5_mlp_mixer.SPEC,
    fig6_finetune.SPEC,
    fig7_gap_vs_js0.SPEC,
    fig_layernorm.SPEC,
    fig8_quadratic.SPEC,
    fig_newton.SPEC,
    fig_eps.SPEC,
    fig_batch.SPEC,
    fig_ladder.SPEC,
    proofs_verdicts.SPEC,
)}
