"""quadlab — a numba-accelerated lab for block-diagonal quadratics (the paper's §3).

L(w) = ½ wᵀHw − hᵀw with H = diag(H_1, …, H_L) positive definite: the paper's Hessian cases,
GD and Adam variants (closed form where the iteration is linear), the constant r of Theorem 1,
step-size tuning and the quadratic study of Figure 8.
"""

from .cases import CASES, make_problem
from .constants import AdamConstants, adam_constants, estimate_r
from .optimizers import OPTIMIZERS, OptimizerSpec, make_optimizer
from .problem import Problem
from .run import DivergenceError, DivergenceWarning, divergence_steps, run

__all__ = [
    "AdamConstants",
    "CASES",
    "OPTIMIZERS",
    "DivergenceError",
    "DivergenceWarning",
    "OptimizerSpec",
    "Problem",
    "adam_constants",
    "divergence_steps",
    "estimate_r",
    "make_optimizer",
    "make_problem",
    "run",
]
