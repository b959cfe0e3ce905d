"""Warnings point at the user's line, whichever entry point and however deep in nets."""

from __future__ import annotations

import warnings

import torch
from torch import nn

import nets
from nets.engine.userwarn import warn


def _caught(run) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return list(caught)


def _bf16_problem():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(6, 3, generator=g)
    y = torch.randint(0, 2, (6,), generator=g)
    return model.to(torch.bfloat16), nn.functional.cross_entropy, [(x.bfloat16(), y)]


def test_warnings_point_at_the_callers_line_from_every_entry_point():
    """The precision and budget warnings, raised several frames down, are this file's: through
    blockwise_spectrum and through full_spectrum, one frame deeper (a stacklevel counted by hand
    pointed full_spectrum's into the package)."""
    model, loss_fn, data = _bf16_problem()
    for run in (lambda: nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=3, probes=1,
                                                max_memory=1),
                lambda: nets.full_spectrum(model, loss_fn, data, lanczos_steps=3, probes=1,
                                           max_memory=1)):
        caught = _caught(run)
        assert {str(w.message).split(":")[0] for w in caught} == {
            "the model's parameters are torch.bfloat16", "max_memory=1 bytes is below the least "
            "this run holds"}
        assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]


def test_warn_called_outside_nets_points_at_its_caller():
    (w,) = _caught(lambda: warn("here", RuntimeWarning))
    assert (w.filename, w.category, str(w.message)) == (__file__, RuntimeWarning, "here")
