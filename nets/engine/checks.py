"""Argument checks of the engine's public entry points: a clear error that names the argument.

Every entry point checks what it is given before computing, so a malformed argument raises a
``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, bad value) whose message
starts with the argument's name and says what is expected, instead of a traceback from deep
inside numpy or torch, a hang, or a silent NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from nets.engine.slq import BlockSpectrum

__all__ = [
    "check_array",
    "check_callable",
    "check_int",
    "check_iterable",
    "check_model",
    "check_positive",
    "check_problem",
    "check_spectra",
    "check_spectrum",
]


def check_int(name: str, value: Any, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """``value`` as an ``int`` (numpy integers accepted; bools and floats refused).

    Args:
        name: The argument's name (starts the message).
        value: What was given.
        minimum: Smallest allowed value.
        maximum: Largest allowed value.

    Raises:
        TypeError: not an integer.
        ValueError: outside ``[minimum, maximum]``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
    return v


def check_positive(name: str, value: Any) -> float:
    """``value`` as a finite positive float (bools refused).

    Args:
        name: The argument's name.
        value: What was given.

    Raises:
        TypeError: not a real number.
        ValueError: not finite and positive.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and positive, got {v!r}")
    return v


def check_array(name: str, value: Any, *, ndim: tuple[int, ...], nonempty: bool = True
                ) -> np.ndarray:
    """``value`` as a finite float64 array with one of the allowed numbers of dimensions.

    Args:
        name: The argument's name.
        value: What was given (array-like of real numbers).
        ndim: Allowed numbers of dimensions.
        nonempty: Refuse an empty array.

    Raises:
        TypeError: not an array of real numbers.
        ValueError: wrong number of dimensions, empty, or non-finite entries.
    """
    if isinstance(value, str | bytes | Mapping) or value is None:
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype.kind not in "biuf" or a.dtype == np.bool_:
        raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
    if a.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimension(s), got "
                         f"shape {a.shape}")
    if nonempty and a.size == 0:
        raise ValueError(f"{name} is empty")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds non-finite values")
    return a


def check_model(model: Any) -> torch.nn.Module:
    """Refuse anything but a ``torch.nn.Module``, a module wrapped for data-parallel
    training (``nn.DataParallel``, ``DistributedDataParallel``: the Hessian is the wrapped
    module's, and the stateless calls the products need refuse the wrapper) and a module
    wrapped by ``torch.compile`` (its compiled backward has no double backward: torch raises
    "torch.compile with aot_autograd does not currently support double backward"). A module
    compiled in place (``module.compile()``) or holding compiled submodules is accepted: its
    Hessian was the plain module's (``tests/nets/test_bad_input.py``).

    Args:
        model: What was given as the model.

    Raises:
        TypeError: not a module, or a data-parallel or ``torch.compile`` wrapper (the message
            names the fix).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.nn.DataParallel | torch.nn.parallel.DistributedDataParallel):
        raise TypeError(f"model is wrapped in {type(model).__name__}: pass model.module (the "
                        "Hessian is the wrapped module's; under torchrun nets shares the data "
                        "between the ranks itself, docs/distributed.md)")
    if type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
        raise TypeError("model is compiled by torch.compile (OptimizedModule), whose compiled "
                        "backward has no double backward: pass model._orig_mod (the same "
                        "module and parameters, uncompiled; compile=True compiles nets' own "
                        "products)")
    return model


def check_callable(name: str, value: Any) -> Any:
    """Refuse a non-callable (e.g. a tensor passed as the loss).

    Args:
        name: The argument's name.
        value: What was given.

    Raises:
        TypeError: not callable.
    """
    if not callable(value) or isinstance(value, type):
        raise TypeError(f"{name} must be a function such as "
                        f"torch.nn.functional.cross_entropy, got {type(value).__name__}")
    return value


def check_iterable(name: str, value: Any) -> Any:
    """Refuse a non-iterable or a string/tensor where batches are expected.

    Args:
        name: The argument's name.
        value: What was given.

    Raises:
        TypeError: not an iterable of batches.
    """
    if isinstance(value, str | bytes | Mapping | torch.Tensor | np.ndarray) or not isinstance(
            value, Iterable):
        raise TypeError(f"{name} must be an iterable of (inputs, targets) batches, got "
                        f"{type(value).__name__}")
    return value


def check_problem(model: Any, loss_fn: Any, data: Any) -> None:
    """Refuse a model that is not a module, a loss that is not callable, or data that is not an
    iterable of batches (the three arguments of every Hessian entry point).

    Args:
        model: What was given as the model.
        loss_fn: What was given as the loss function.
        data: What was given as the data.

    Raises:
        TypeError: one of the three is of the wrong kind (the message names it).
    """
    check_model(model)
    check_callable("loss_fn", loss_fn)
    check_iterable("data", data)


def check_spectrum(name: str, spec: Any) -> BlockSpectrum:
    """Refuse anything but a non-empty :class:`BlockSpectrum` with finite nodes and weights.

    Args:
        name: The argument's name.
        spec: What was given.

    Raises:
        TypeError: not a BlockSpectrum.
        ValueError: no probes, or non-finite nodes or weights.
    """
    if not isinstance(spec, BlockSpectrum):
        raise TypeError(f"{name} must be a nets.BlockSpectrum, got {type(spec).__name__}")
    nodes, weights = np.asarray(spec.nodes), np.asarray(spec.weights)
    if nodes.ndim != 2 or nodes.shape != weights.shape or nodes.shape[0] == 0:
        raise ValueError(f"{name} ({spec.name!r}) must hold (probes, steps) nodes and weights "
                         f"of one shape with at least one probe, got {nodes.shape} and "
                         f"{weights.shape}")
    if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))):
        raise ValueError(f"{name} ({spec.name!r}) holds non-finite nodes or weights")
    return spec


def check_spectra(name: str, spectra: Any, *, at_least: int = 1) -> dict[str, BlockSpectrum]:
    """Refuse anything but a mapping of block names to valid spectra.

    Args:
        name: The argument's name.
        spectra: What was given.
        at_least: Fewest blocks allowed.

    Raises:
        TypeError: not a mapping of names to BlockSpectrum.
        ValueError: too few blocks, or a block with no probes or non-finite values.
    """
    if not isinstance(spectra, Mapping):
        raise TypeError(f"{name} must be a mapping {{block name: BlockSpectrum}}, got "
                        f"{type(spectra).__name__}")
    if len(spectra) < at_least:
        raise ValueError(f"{name} must hold at least {at_least} block(s), got {len(spectra)}")
    for k, s in spectra.items():
        if not isinstance(k, str):
            raise TypeError(f"{name} keys must be block names (str), got {type(k).__name__}")
        check_spectrum(f"{name}[{k!r}]", s)
    return dict(spectra)
