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
from .study import DEFAULT_OPTIMIZERS, StudyResult, StudyRun, run_study
from .tuning import TuneResult, iterations_to_tolerance, tune_lr

__all__ = [
    "CASES",
    "DEFAULT_OPTIMIZERS",
    "OPTIMIZERS",
    "AdamConstants",
    "DivergenceError",
    "DivergenceWarning",
    "OptimizerSpec",
    "Problem",
    "StudyResult",
    "StudyRun",
    "TuneResult",
    "adam_constants",
    "divergence_steps",
    "estimate_r",
    "iterations_to_tolerance",
    "make_optimizer",
    "make_problem",
    "run",
    "run_study",
    "tune_lr",
]
