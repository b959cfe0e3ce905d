"""Optimizer specifications: names, hyper-parameters, defaults and their checks.

Update rules (g_t = ∇L(w_t), all products and quotients coordinatewise):

* ``gd``            w ← w − η g                                   (paper Eq. for GD)
* ``blockwise-gd``  w_l ← w_l − η s_l g_l, one step size per block; by default
  s_l = 2 / (λ_max(H_l) + λ_min(H_l)), the optimal GD step of block l alone, so η = 1 runs every
  block at its own best step (the paper's claim of what rescues GD).
* ``sign-gd``       w ← w − η sign(g)
* ``adam``          m ← β1 m + (1−β1) g,  v ← β2 v + (1−β2) g⊙g,  w ← w − η m̂ / (√v̂ + ε)
  - ``bias_correction=False`` (default, the paper's convention): m and v start at g(w0) and
    g(w0)⊙g(w0), and m̂ = m, v̂ = v. Then β1 = 0, β2 = 1 is exactly the simplified Adam of the
    paper's Eq. (2), w ← w − η diag(|∇L(w0)|)⁻¹ ∇L(w), and β2 < 1 its Eq. (3) (Proposition 2).
  - ``bias_correction=True``: PyTorch's ``torch.optim.Adam`` exactly (moments start at zero,
    m̂ = m/(1−β1^{t+1}), v̂ = v/(1−β2^{t+1})).
  Defaults β1 = 0, β2 = 1, ε = 0: the paper's simplified Adam.
* ``adabelief``     m ← β1 m + (1−β1) g,  s ← β2 s + (1−β2) (g − m)⊙(g − m),
  w ← w − η m̂ / (√ŝ + ε) with m̂ = m/(1−β1^{t+1}), ŝ = s/(1−β2^{t+1}), moments starting at zero
  (Zhuang et al. 2020, as written in seed 002). Choice: ε only outside the square root — the
  AdaBelief paper also adds ε to s at every step; leaving it out keeps ε's meaning identical to
  Adam's, so the two differ only in averaging (g − m)² instead of g². Defaults β1 = 0.9,
  β2 = 0.999, ε = 1e-8; β1 must be > 0 (with β1 = 0, m = g and s ≡ 0) and β2 < 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import kernels
from .problem import Problem
from .validation import as_float_array, as_real, check_choice, check_options

#: name -> (kernel code, {hyper-parameter: default})
OPTIMIZERS: dict[str, tuple[int, dict]] = {
    "gd": (kernels.GD, {}),
    "blockwise-gd": (kernels.GD, {"block_scales": None}),
    "sign-gd": (kernels.SIGN, {}),
    "adam": (kernels.ADAM, {"beta1": 0.0, "beta2": 1.0, "eps": 0.0, "bias_correction": False}),
    "adabelief": (kernels.ADABELIEF, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
}


@dataclass(frozen=True)
class OptimizerSpec:
    """A validated optimizer: its name, kernel code and hyper-parameters."""

    name: str
    code: int
    beta1: float = 0.0
    beta2: float = 1.0
    eps: float = 0.0
    bias_correction: bool = False
    block_scales: tuple[float, ...] | None = None

    @property
    def is_linear(self) -> bool:
        """True when the iteration is e ← (I − η P H) e with a fixed diagonal P (closed form)."""
        if self.name in ("gd", "blockwise-gd"):
            return True
        return (self.name == "adam" and self.beta1 == 0.0 and self.beta2 == 1.0
                and not self.bias_correction)

    def coordinate_scale(self, problem: Problem) -> np.ndarray:
        """Per-coordinate multiplier of η: the block step sizes for blockwise GD, else ones.

        Args:
            problem: the quadratic (its blocks and their extreme eigenvalues).

        Returns:
            Shape (d,): s_l on block l's coordinates (s_l = 2/(λ_max + λ_min) by default).
        """
        if self.name != "blockwise-gd":
            return np.ones(problem.d)
        if self.block_scales is None:
            scales = 2.0 / (problem.lambda_max_blocks + problem.lambda_min_blocks)
        else:
            scales = np.asarray(self.block_scales, dtype=np.float64)
            if scales.shape != (problem.n_blocks,):
                raise ValueError(f"block_scales must have one entry per block "
                                 f"({problem.n_blocks}), got shape {scales.shape}")
        return scales[problem.block_index]

    def label(self) -> str:
        """Short human-readable name with the hyper-parameters that matter."""
        if self.name not in ("adam", "adabelief"):
            return self.name
        parts = [f"β1={self.beta1:g}", f"β2={self.beta2:g}"]
        if self.eps:
            parts.append(f"ε={self.eps:g}")
        if self.bias_correction and self.name == "adam":
            parts.append("bias-corr")
        return f"{self.name}({', '.join(parts)})"


def make_optimizer(name: str, **hyper: float | bool | Sequence[float] | None) -> OptimizerSpec:
    """Validate an optimizer name and its hyper-parameters.

    Args:
        name: "gd", "blockwise-gd", "sign-gd", "adam" or "adabelief".
        **hyper: beta1, beta2, eps, bias_correction (Adam); beta1, beta2, eps (AdaBelief);
            block_scales (blockwise GD). Defaults in `OPTIMIZERS`.

    Returns:
        The validated `OptimizerSpec`.

    Raises:
        ValueError: unknown optimizer or option; β1 outside [0, 1); β2 outside [0, 1]; ε < 0 or
            non-finite; bias correction with β2 = 1 (its v̂ would divide by zero); non-positive
            block scales; for AdaBelief β1 outside (0, 1) or β2 outside [0, 1).
    """
    check_choice(name, OPTIMIZERS, what="optimizer")
    code, defaults = OPTIMIZERS[name]
    check_options(hyper, defaults, what=f"optimizer {name!r}")
    params = {**defaults, **hyper}
    if name in ("adam", "adabelief"):
        beta1, beta2, eps = (as_real(params[k], name=k) for k in ("beta1", "beta2", "eps"))
    if name == "adam":
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"beta1 must be in [0, 1), got {params['beta1']!r}")
        if not 0.0 <= beta2 <= 1.0:
            raise ValueError(f"beta2 must be in [0, 1], got {params['beta2']!r}")
        if not (np.isfinite(eps) and eps >= 0.0):
            raise ValueError(f"eps must be finite and >= 0, got {params['eps']!r}")
        bias = params["bias_correction"]
        if not isinstance(bias, bool | np.bool_):
            raise ValueError(f"bias_correction must be a bool, got {bias!r}")
        if bias and beta2 == 1.0:
            raise ValueError("bias_correction=True needs beta2 < 1 (1 − β2^t would be 0)")
        return OptimizerSpec(name, code, beta1, beta2, eps, bool(bias))
    if name == "adabelief":
        if not 0.0 < beta1 < 1.0:
            raise ValueError(f"beta1 must be in (0, 1) for adabelief (β1 = 0 makes g − m ≡ 0), "
                             f"got {params['beta1']!r}")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"beta2 must be in [0, 1) for adabelief, got {params['beta2']!r}")
        if not (np.isfinite(eps) and eps >= 0.0):
            raise ValueError(f"eps must be finite and >= 0, got {params['eps']!r}")
        return OptimizerSpec(name, code, beta1, beta2, eps, True)
    if name == "blockwise-gd" and params["block_scales"] is not None:
        scales = as_float_array(params["block_scales"], name="block_scales", ndim=1)
        if np.any(scales <= 0):
            raise ValueError("block_scales must all be > 0")
        return OptimizerSpec(name, code, block_scales=tuple(float(s) for s in scales))
    return OptimizerSpec(name, code)
