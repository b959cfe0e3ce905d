"""The registry of figures, in report order."""

from __future__ import annotations

from . import (
    fig1_full_spectra,
    fig2_hessian_structure,
    fig8_quadratic,
    fig34_blockwise,
    nets_specs,
    noise_specs,
    proofs_verdicts,
)
from .registry import FigureSpec

FIGURES: dict[str, FigureSpec] = {spec.name: spec for spec in (
    fig1_full_spectra.SPEC,
    fig2_hessian_structure.SPEC,
    fig34_blockwise.SPEC,
    nets_specs.HETERO,
    nets_specs.FINETUNE,
    nets_specs.TABLE1,
    nets_specs.LAYERNORM,
    fig8_quadratic.SPEC,
    noise_specs.NEWTON,
    noise_specs.EPS,
    noise_specs.BATCH,
    proofs_verdicts.SPEC,
)}
