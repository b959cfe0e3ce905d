"""nets: full and blockwise Hessian spectra of real networks by stochastic Lanczos quadrature.

Conventions used everywhere: ``data`` is a re-iterable of ``(inputs, targets)`` batches,
``loss_fn(model(inputs), targets)`` is a scalar mean loss, and the Hessian is that of the mean
loss over all of ``data`` (batches weighted by their number of samples).

This package exports the spectra engine (:mod:`nets.engine`). The model zoo and data live in
:mod:`nets.zoo`, the training studies in :mod:`nets.studies`, the command line in
:mod:`nets.cli`.
"""

from labkit.interrupts import guard_startup

# Before the heavy imports below: Ctrl-C while they load (`python -m nets`) prints one
# line and exits 130 instead of an import traceback.
guard_startup("nets")

from nets.engine.blocks import (
    Block,
    Piece,
    full_block,
    resolve_blocks,
    split_parameter,
)
from nets.engine.density import (
    CHECK_RECIPES,
    RECIPES,
    DensityRecipe,
    block_densities,
    kth_largest_eigenvalue,
    lambda10,
    spectral_density,
)
from nets.engine.distributed import (
    Communicator,
    DistributedCommunicator,
    DistributedError,
    init_from_env,
    launched_by_torchrun,
)
from nets.engine.exact import dense_hessian, exact_blockwise_eigenvalues
from nets.engine.groups import (
    lanczos_group_floor_bytes,
    lanczos_groups,
    lanczos_probe_bytes,
    lanczos_work_bytes,
)
from nets.engine.hvp import BlockHVP
from nets.engine.intervals import ProbeInterval, probe_interval, probe_resamples
from nets.engine.js import (
    JS0Estimate,
    js0,
    js0_bootstrap,
    js0_sensitivity,
    js_between,
    js_matrix,
    numerically_zero_blocks,
)
from nets.engine.lanczos import REORTH_MODES, LanczosRun, lanczos
from nets.engine.products import make_batch_hessian_vector_product
from nets.engine.roles import (
    BLOCK_SETS,
    FUSED_LAYOUTS,
    MATRIX_ROLES,
    ROLES,
    SPLITS,
    attention_parts,
    block_roles,
    block_set,
    matrix_blocks,
    parameter_roles,
    role_blocks,
)
from nets.engine.slq import BlockSpectrum, gauss_quadrature
from nets.engine.spectrum import blockwise_spectrum, full_spectrum, operator_spectra, probe_vector

__all__ = [
    "BLOCK_SETS",
    "CHECK_RECIPES",
    "FUSED_LAYOUTS",
    "MATRIX_ROLES",
    "RECIPES",
    "REORTH_MODES",
    "ROLES",
    "SPLITS",
    "Block",
    "BlockHVP",
    "BlockSpectrum",
    "Communicator",
    "DensityRecipe",
    "DistributedCommunicator",
    "DistributedError",
    "JS0Estimate",
    "LanczosRun",
    "Piece",
    "ProbeInterval",
    "attention_parts",
    "block_densities",
    "block_roles",
    "block_set",
    "blockwise_spectrum",
    "dense_hessian",
    "exact_blockwise_eigenvalues",
    "full_block",
    "full_spectrum",
    "gauss_quadrature",
    "init_from_env",
    "js0",
    "js0_bootstrap",
    "js0_sensitivity",
    "js_between",
    "js_matrix",
    "kth_largest_eigenvalue",
    "lambda10",
    "lanczos",
    "lanczos_group_floor_bytes",
    "lanczos_groups",
    "lanczos_probe_bytes",
    "lanczos_work_bytes",
    "launched_by_torchrun",
    "make_batch_hessian_vector_product",
    "matrix_blocks",
    "numerically_zero_blocks",
    "operator_spectra",
    "parameter_roles",
    "probe_interval",
    "probe_resamples",
    "probe_vector",
    "resolve_blocks",
    "role_blocks",
    "spectral_density",
    "split_parameter",
]
