"""How the engine calls a user's model: one place that turns a batch's inputs into a forward call.

Every Hessian-vector product in :mod:`nets.engine` calls the model through
:func:`functional_forward`, so supporting a new kind of input (a dict of tensors passed as
keyword arguments, a tuple of positional tensors) or output happens here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.func import functional_call

__all__ = ["functional_forward"]


def functional_forward(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor] |
                       tuple[Mapping[str, torch.Tensor], ...], inputs: object) -> object:
    """``model(inputs)`` evaluated with the parameters and buffers ``tensors`` (``torch.func``).

    Args:
        model: The module.
        tensors: Parameters and buffers by name, or a tuple of such dicts
            (as :func:`torch.func.functional_call` accepts).
        inputs: A tensor (one positional argument) or a mapping of keyword arguments.

    Returns:
        Whatever the model returns; the loss function receives it unchanged.
    """
    if isinstance(inputs, Mapping):
        return functional_call(model, tensors, (), dict(inputs))
    return functional_call(model, tensors, (inputs,))
