"""Fuzz the public spectra entry points of nets with malformed arguments.

Each example takes a valid call of one entry point and replaces one argument with a malformed
value (wrong type, wrong shape, NaN/inf, extremes). The call must either raise a ValueError or
TypeError whose message names the argument, or return a finite result; never another exception,
a hang (an alarm fails the example after a few seconds) or a silent NaN.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nets
from nets import BlockSpectrum, DensityRecipe

HANG_S = 20


def _problem():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = model.double()
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 2, generator=g, dtype=torch.float64)
    return model, torch.nn.functional.mse_loss, [(x, y)]


MODEL, LOSS, DATA = _problem()
SPECTRA = nets.blockwise_spectrum(MODEL, LOSS, DATA, lanczos_steps=4, probes=3, seed=0)
ONE = SPECTRA["0.weight"]

def _convex_spectrum() -> BlockSpectrum:
    """Full spectrum of least squares (positive definite, dimension 13): lambda10 is defined."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 12, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(12, 1).double()
    return nets.full_spectrum(model, LOSS, [(x, torch.zeros(40, 1, dtype=torch.float64))],
                              lanczos_steps=12, probes=2, seed=0)


LONG = _convex_spectrum()


def _with_nan() -> dict[str, BlockSpectrum]:
    nodes = ONE.nodes.copy()
    nodes[0, 0] = np.nan
    bad = BlockSpectrum(ONE.name, ONE.dim, nodes, ONE.weights, ONE.n_steps, ONE.probe_ids)
    return {**SPECTRA, ONE.name: bad}


#: Malformed values tried for every argument.
COMMON = [None, "x", b"x", -1, 0, 2.5, -0.0, math.nan, math.inf, -math.inf, 10**18, True,
          [], {}, (), 1 + 2j, object(), np.array([np.nan]), np.float64("nan"), torch.ones(2)]

#: Extra malformed values for some arguments.
EXTRA = {
    "spectra": [{}, {"a": "x"}, {"only": ONE}, _with_nan(), [ONE, ONE], ONE],
    "spec": [ONE.select(np.array([], dtype=int)), SPECTRA],
    "recipe": ["default", DensityRecipe],
    "recipes": [{"r": "x"}, {}, [DensityRecipe()]],
    "width_factors": [(), (0.0,), (math.nan,), (-1.0,)],
    "axis": ["lin", "LOG"],
    "normalize": ["lambda99", "NONE"],
    "model": [torch.nn.Identity(), MODEL.state_dict()],
    "loss_fn": [lambda out, y: out.sum() * math.nan, lambda out, y: out, 3],
    "data": [[], [(DATA[0][0], DATA[0][1][:, :1])], [(DATA[0][0][:, :2], DATA[0][1])],
             [(DATA[0][0] * math.nan, DATA[0][1])], [DATA[0][0]], iter([])],
    "blocks": [{"a": "nope"}, {"a": ("0.weight", (slice(0, 99),))}, {"": "0.weight"},
               {"a": "0.weight", "b": "0.weight"}],
    "probe_indices": [[0, 0], [-1], [5, 1], ["a"], [2.5]],
    "nodes": [np.ones((2, 3)), np.array([[1.0, np.inf]])],
    "weights": [-np.ones((1, 2)), np.array([[0.5, np.nan]])],
    "grid": [np.array([]), np.array([[1.0]]), np.array([np.inf])],
    "sigma": [1e-320, 1e300],
    "rng": [0, np.random.RandomState(0)],
    "shape": [(0,), (-2, 3), "ab", (2.5,)],
    "parts": [0, 7, ["q"], ["q", "q", "v"]],
}


def _spectral_density(**kw):
    return nets.spectral_density(**kw)


#: Other words that name an argument in a message: the batches of ``data`` ("batch 0 is not an
#: (inputs, targets) pair"), the loss ("the loss is not finite"), a block of ``blocks``.
MODEL_ALIASES = {"data": ("batch",), "loss_fn": ("loss",), "blocks": ("block",)}
JS0_ALIASES = {"spectra": ("blocks",)}

#: name -> (function, valid keyword arguments, names the message may use for each argument).
CASES: dict[str, tuple[Callable, dict, dict[str, tuple[str, ...]]]] = {
    "blockwise_spectrum": (
        lambda **k: nets.blockwise_spectrum(k.pop("model"), k.pop("loss_fn"), k.pop("data"),
                                            **k),
        dict(model=MODEL, loss_fn=LOSS, data=DATA, lanczos_steps=3, probes=2, seed=1,
             blocks=None, probe_indices=None, chunk_size=None), MODEL_ALIASES),
    "full_spectrum": (
        lambda **k: nets.full_spectrum(k.pop("model"), k.pop("loss_fn"), k.pop("data"), **k),
        dict(model=MODEL, loss_fn=LOSS, data=DATA, lanczos_steps=3, probes=2, seed=1),
        MODEL_ALIASES),
    "js_matrix": (nets.js_matrix, dict(spectra=SPECTRA, recipe=DensityRecipe()), {}),
    "js0": (nets.js0, dict(spectra=SPECTRA, recipe=DensityRecipe()), JS0_ALIASES),
    "js_between": (nets.js_between, dict(first=SPECTRA, second=SPECTRA,
                                         recipe=DensityRecipe()), {}),
    "js0_bootstrap": (nets.js0_bootstrap,
                      dict(spectra=SPECTRA, recipe=DensityRecipe(), n_boot=5,
                           rng=np.random.default_rng(0)), JS0_ALIASES),
    "block_densities": (nets.block_densities, dict(spectra=SPECTRA, recipe=DensityRecipe()), {}),
    "spectral_density": (_spectral_density,
                         dict(nodes=ONE.nodes, weights=ONE.weights,
                              grid=np.linspace(-1, 1, 50), sigma=0.1), {}),
    "lambda10": (nets.lambda10, dict(spec=LONG), {}),
    "kth_largest_eigenvalue": (nets.kth_largest_eigenvalue, dict(spec=LONG, k=1), {}),
    "probe_vector": (nets.probe_vector, dict(seed=0, probe=1, block="a", dim=5), {}),
    "DensityRecipe": (DensityRecipe, dict(axis="log", width=0.01, grid_size=100,
                                          normalize="none"), {"grid_size": ("grid",)}),
    "split_parameter": (nets.split_parameter, dict(name="w", shape=(6, 2), parts=3, dim=0),
                        {}),
    "js0_sensitivity": (nets.js0_sensitivity,
                        dict(spectra=SPECTRA, recipes={"r": DensityRecipe(grid_size=100)},
                             width_factors=(1.0, 2.0), zero_rels=(1e-7, 1e-5)), {}),
    "dense_hessian": (nets.dense_hessian, dict(model=MODEL, loss_fn=LOSS, data=DATA),
                      MODEL_ALIASES),
    "probe_interval": (nets.probe_interval,
                       dict(value=0.5, replicates=[0.4, 0.6, 0.5], probes=3, level=0.95,
                            bounds=(0.0, 1.0)), {}),
}


@contextmanager
def _alarm(seconds: int):
    def on_alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _finite(x) -> bool:
    if isinstance(x, BlockSpectrum):
        return bool(np.all(np.isfinite(x.nodes)) and np.all(np.isfinite(x.weights)))
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list | tuple):
        return all(_finite(v) for v in x)
    if isinstance(x, np.ndarray) and x.dtype.kind in "fc":
        return bool(np.all(np.isfinite(x)))
    if isinstance(x, float | np.floating):
        return math.isfinite(x)
    if hasattr(x, "__dataclass_fields__"):
        return all(_finite(getattr(x, f)) for f in x.__dataclass_fields__)
    return True


def _bad_values(arg: str) -> list:
    return COMMON + EXTRA.get(arg, [])


def malformed_examples(cases: dict, bad_values: Callable[[str], list]):
    """Hypothesis strategy of ``(case name, argument, index of a bad value)`` over ``cases``
    (name -> (function, valid keyword arguments, ...)) and ``bad_values(argument)``."""
    return st.sampled_from(sorted(cases)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(sorted(cases[name][1]))).flatmap(
            lambda na: st.tuples(st.just(na[0]), st.just(na[1]),
                                 st.sampled_from(range(len(bad_values(na[1])))))))


_examples = malformed_examples(CASES, _bad_values)


@pytest.mark.parametrize("name", sorted(CASES))
def test_valid_calls_work(name):
    func, kwargs, _ = CASES[name]
    assert _finite(func(**dict(kwargs)))


def refused_by_name_or_handled(name: str, func: Callable, kwargs: dict, arg: str, bad,
                               aliases: tuple[str, ...] = ()):
    """Call ``func`` with ``arg`` replaced by ``bad``: a ValueError/TypeError naming the argument
    (or one of its ``aliases``) passes and gives ``None``; a finite result is returned; anything
    else (another exception, a hang, a silent non-finite result) fails the test."""
    try:
        with _alarm(HANG_S):
            result = func(**{**kwargs, arg: bad})
    except (ValueError, TypeError) as e:
        assert any(n in str(e) for n in (arg, *aliases)), (
            f"{name}({arg}={bad!r}) raised {type(e).__name__} without naming {arg!r}: {e}")
        return None
    except Exception as e:
        pytest.fail(f"{name}({arg}={bad!r}) raised {type(e).__name__}: {e}")
    assert _finite(result), f"{name}({arg}={bad!r}) returned a non-finite result silently"
    return result


@settings(deadline=None, suppress_health_check=list(HealthCheck))
@given(_examples)
def test_malformed_arguments_are_refused_by_name_or_handled(example):
    name, arg, i = example
    func, kwargs, aliases = CASES[name]
    refused_by_name_or_handled(name, func, kwargs, arg, _bad_values(arg)[i],
                               aliases.get(arg, ()))
