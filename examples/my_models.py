"""An example model factory for ``nets advise`` (the command documented in README.md):

    nets advise --model examples/my_models.py:make_cnn

A factory takes no arguments and returns ``(model, loss_fn, data)`` in the :mod:`nets`
conventions: ``model`` a ``torch.nn.Module`` in eval mode, ``loss_fn(model(inputs), targets)``
a scalar mean loss that is twice differentiable, ``data`` a list of ``(inputs, targets)``
batches (the Hessian is that of the mean loss over all of them). Everything is seeded, so the
advice is the same on every run with the same thread count.
"""

from __future__ import annotations

import torch

from nets.zoo import glyph_digits

__all__ = ["make_cnn"]


def make_cnn(seed: int = 0) -> tuple[torch.nn.Module, object, list]:
    """A small two-convolution CNN on 16×16 glyph digits (64 images in two batches).

    Args:
        seed: Seed of the initialization and of the images.

    Returns:
        ``(model, loss_fn, data)`` for ``nets advise``.
    """
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10)).eval()
    g = torch.Generator().manual_seed(seed)  # explicit: no global random state
    with torch.no_grad():
        for m in model:
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, fan_in ** -0.5, generator=g)
                m.bias.zero_()
    x, y = glyph_digits(64, size=16, seed=seed)
    return model, torch.nn.functional.cross_entropy, [(x[:32], y[:32]), (x[32:], y[32:])]
