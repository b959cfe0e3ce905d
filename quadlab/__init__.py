"""quadlab — a numba-accelerated lab for block-diagonal quadratics (the paper's §3).

L(w) = ½ wᵀHw − hᵀw with H = diag(H_1, …, H_L) positive definite: the paper's Hessian cases,
GD and Adam variants (closed form where the iteration is linear), the constant r of Theorem 1,
step-size tuning and the quadratic study of Figure 8. Stochastic quadratics (`quadlab.noise`):
Gaussian and least-squares minibatch gradient noise with a batch size, per-trajectory seeds.
"""

from labkit.interrupts import guard_startup

# Before the heavy imports below: Ctrl-C while they load (`python -m quadlab`) prints one
# line and exits 130 instead of an import traceback.
guard_startup("quadlab")

from .cases import CASES, make_problem
from .constants import AdamConstants, adam_constants, estimate_r
from .noise import GaussianNoise, LeastSquaresNoise, sample_gradients
from .optimizers import OPTIMIZERS, OptimizerSpec, make_optimizer
from .problem import Problem
from .run import (
    DivergenceError,
    DivergenceWarning,
    RunGaps,
    UnderflowError,
    UnderflowWarning,
    divergence_steps,
    run,
    underflow_steps,
)
from .statistics import TrajectoryStatistics, trajectory_statistics
from .tuning import TuneResult, iterations_to_tolerance, tune_lr

__all__ = [
    "CASES",
    "OPTIMIZERS",
    "AdamConstants",
    "DivergenceError",
    "DivergenceWarning",
    "GaussianNoise",
    "LeastSquaresNoise",
    "OptimizerSpec",
    "Problem",
    "RunGaps",
    "TrajectoryStatistics",
    "TuneResult",
    "UnderflowError",
    "UnderflowWarning",
    "adam_constants",
    "divergence_steps",
    "estimate_r",
    "iterations_to_tolerance",
    "make_optimizer",
    "make_problem",
    "run",
    "sample_gradients",
    "trajectory_statistics",
    "tune_lr",
    "underflow_steps",
]
