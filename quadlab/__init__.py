"""quadlab — a numba-accelerated lab for block-diagonal quadratics (the paper's §3).

L(w) = ½ wᵀHw − hᵀw with H = diag(H_1, …, H_L) positive definite: the paper's Hessian cases,
GD and Adam variants (closed form where the iteration is linear), the constant r of Theorem 1,
step-size tuning and the quadratic study of Figure 8. Stochastic quadratics (`quadlab.noise`):
Gaussian and least-squares minibatch gradient noise with a batch size, per-trajectory seeds.
"""

from .batch_study import BatchCurve, BatchResult, batch_study
from .cases import CASES, make_problem
from .constants import AdamConstants, adam_constants, estimate_r
from .eps_study import EpsResult, EpsRow, eps_study, softsign
from .newton import NewtonResult, NewtonRow, newton_study
from .noise import GaussianNoise, LeastSquaresNoise, sample_gradients
from .optimizers import OPTIMIZERS, OptimizerSpec, make_optimizer
from .problem import Problem
from .run import (
    DivergenceError,
    DivergenceWarning,
    UnderflowError,
    UnderflowWarning,
    divergence_steps,
    run,
    underflow_steps,
)
from .statistics import TrajectoryStatistics, trajectory_statistics
from .study import DEFAULT_OPTIMIZERS, StudyResult, StudyRun, run_study
from .tuning import TuneResult, iterations_to_tolerance, tune_lr

__all__ = [
    "CASES",
    "DEFAULT_OPTIMIZERS",
    "OPTIMIZERS",
    "AdamConstants",
    "BatchCurve",
    "BatchResult",
    "DivergenceError",
    "DivergenceWarning",
    "EpsResult",
    "EpsRow",
    "GaussianNoise",
    "LeastSquaresNoise",
    "NewtonResult",
    "NewtonRow",
    "OptimizerSpec",
    "Problem",
    "StudyResult",
    "StudyRun",
    "TrajectoryStatistics",
    "TuneResult",
    "UnderflowError",
    "UnderflowWarning",
    "adam_constants",
    "batch_study",
    "divergence_steps",
    "eps_study",
    "estimate_r",
    "iterations_to_tolerance",
    "make_optimizer",
    "make_problem",
    "newton_study",
    "run",
    "run_study",
    "sample_gradients",
    "softsign",
    "trajectory_statistics",
    "tune_lr",
    "underflow_steps",
]
