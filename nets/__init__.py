"""nets: full and blockwise Hessian spectra of real networks by stochastic Lanczos quadrature.

Conventions used everywhere: ``data`` is a re-iterable of ``(inputs, targets)`` batches,
``loss_fn(model(inputs), targets)`` is a scalar mean loss, and the Hessian is that of the mean
loss over all of ``data`` (batches weighted by their number of samples).
"""

from .advise import Advice, advise, check_twice_differentiable, load_factory
from .blocks import Block, Piece, resolve_blocks, split_parameter
from .correlation import SpearmanResult, spearman
from .density import (
    DensityRecipe,
    block_densities,
    kth_largest_eigenvalue,
    lambda10,
    spectral_density,
)
from .distributed import (
    Communicator,
    DistributedCommunicator,
    DistributedError,
    init_from_env,
    launched_by_torchrun,
)
from .exact import dense_hessian, exact_blockwise_eigenvalues
from .finetune import FinetuneStudy, finetune_study
from .gap import PROFILES, GapProfile, GapReport, GapResult, gap_metric, measure_gap, tune
from .heterogeneity import scaled_mlp
from .hvp import BlockHVP, make_batch_hessian_vector_product
from .js import JS0Estimate, js0, js0_bootstrap, js0_sensitivity, js_matrix
from .lanczos import LanczosRun, lanczos
from .layernorm import PerturbationStudy, ln_transformer, perturbation_study
from .quadratic import QuadraticModel, quadratic_problem
from .slq import BlockSpectrum, gauss_quadrature
from .spectrum import blockwise_spectrum, full_spectrum, probe_vector
from .table1 import Table1, table1
from .training import Pool, TrainConfig, TrainResult, train

__all__ = [
    "PROFILES",
    "Advice",
    "Block",
    "BlockHVP",
    "BlockSpectrum",
    "Communicator",
    "DensityRecipe",
    "DistributedCommunicator",
    "DistributedError",
    "FinetuneStudy",
    "GapProfile",
    "GapReport",
    "GapResult",
    "JS0Estimate",
    "LanczosRun",
    "PerturbationStudy",
    "Piece",
    "Pool",
    "QuadraticModel",
    "SpearmanResult",
    "Table1",
    "TrainConfig",
    "TrainResult",
    "advise",
    "block_densities",
    "blockwise_spectrum",
    "check_twice_differentiable",
    "dense_hessian",
    "exact_blockwise_eigenvalues",
    "finetune_study",
    "full_spectrum",
    "gap_metric",
    "gauss_quadrature",
    "init_from_env",
    "js0",
    "js0_bootstrap",
    "js0_sensitivity",
    "js_matrix",
    "kth_largest_eigenvalue",
    "lambda10",
    "lanczos",
    "launched_by_torchrun",
    "ln_transformer",
    "load_factory",
    "make_batch_hessian_vector_product",
    "measure_gap",
    "perturbation_study",
    "probe_vector",
    "quadratic_problem",
    "resolve_blocks",
    "scaled_mlp",
    "spearman",
    "spectral_density",
    "split_parameter",
    "table1",
    "train",
    "tune",
]
