"""nets: full and blockwise Hessian spectra of real networks by stochastic Lanczos quadrature.

Conventions used everywhere: ``data`` is a re-iterable of ``(inputs, targets)`` batches,
``loss_fn(model(inputs), targets)`` is a scalar mean loss, and the Hessian is that of the mean
loss over all of ``data`` (batches weighted by their number of samples).
"""

from .blocks import Block, Piece, resolve_blocks, split_parameter
from .density import (
    DensityRecipe,
    block_densities,
    kth_largest_eigenvalue,
    lambda10,
    spectral_density,
)
from .exact import dense_hessian, exact_blockwise_eigenvalues
from .hvp import BlockHVP, make_batch_hessian_vector_product
from .js import JS0Estimate, js0, js0_bootstrap, js0_sensitivity, js_matrix
from .lanczos import LanczosRun, lanczos
from .quadratic import QuadraticModel, quadratic_problem
from .slq import BlockSpectrum, gauss_quadrature
from .spectrum import blockwise_spectrum, full_spectrum, probe_vector

__all__ = [
    "Block",
    "BlockHVP",
    "BlockSpectrum",
    "DensityRecipe",
    "JS0Estimate",
    "LanczosRun",
    "Piece",
    "QuadraticModel",
    "block_densities",
    "blockwise_spectrum",
    "dense_hessian",
    "exact_blockwise_eigenvalues",
    "full_spectrum",
    "gauss_quadrature",
    "js0",
    "js0_bootstrap",
    "js0_sensitivity",
    "js_matrix",
    "kth_largest_eigenvalue",
    "lambda10",
    "lanczos",
    "make_batch_hessian_vector_product",
    "probe_vector",
    "quadratic_problem",
    "resolve_blocks",
    "spectral_density",
    "split_parameter",
]
