"""Property-based fuzzing of every public entry point of quadlab (`quadlab.__all__`,
`quadlab.studies.__all__`): one argument of a small valid call is replaced by a malformed
value (wrong type or shape, NaN/inf, extremes, empty, complex). The call must raise a
ValueError/TypeError whose message names the argument, or return a correct-looking result
without a silent NaN — never another exception and never a hang (every valid call here is
tiny, and sizes are checked before anything is allocated)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quadlab
import quadlab.studies as studies

HETERO = quadlab.make_problem("hetero")
W0 = HETERO.initial_points(seed=0)
ONE = quadlab.Problem.from_blocks([np.eye(1)])


class _Opaque:
    """An object of no numeric kind."""


#: malformed values: wrong types, shapes, non-finite numbers, extremes, empties, complex
BAD = [None, np.nan, np.inf, -np.inf, -1, 0, -2.5, 2.7, 1e308, -1e308, 2**62, True, "x", "",
       1j, [], [[]], [1.0, [2.0]], _Opaque(), np.array([1.0, np.nan]), np.zeros((2, 3, 4)),
       np.array(["a", "b"]), np.ones(9) * 1j, np.full(9, 1e300), np.zeros(9), np.zeros((0, 9)),
       np.array([1, 2, 3], dtype=np.int8), {"a": 1}, (1.0, 2.0)]


@dataclasses.dataclass(frozen=True)
class Entry:
    """A public callable, a cheap valid call, and per argument the words its errors may use."""

    name: str
    fn: Callable
    kwargs: dict
    names: dict  # argument -> tuple of words, one of which an error about it must contain
    args: tuple = ()


def _words(*extra: str) -> tuple:
    return extra


ENTRIES = [
    Entry("Problem.from_blocks", quadlab.Problem.from_blocks,
          {"blocks": [np.eye(2), np.diag([1.0, 3.0])], "h": np.ones(4)},
          {"blocks": _words("block"), "h": _words("h")}),
    Entry("Problem.from_spectra", quadlab.Problem.from_spectra,
          {"eigenvalues": [np.array([1.0, 2.0])], "eigenvectors": [np.eye(2)]},
          {"eigenvalues": _words("eigenvalue", "block"),
           "eigenvectors": _words("eigenvector", "block")}),
    Entry("Problem.initial_points", HETERO.initial_points, {"n": 3, "seed": 0, "std": 1.0},
          {"n": _words("n"), "seed": _words("seed"), "std": _words("std")}),
    Entry("Problem.gap", HETERO.gap, {"w": W0}, {"w": _words("w", "x")}),
    Entry("make_problem", quadlab.make_problem,
          {"case": "transformer", "seed": 0, "block_size": 3, "n_blocks": 2},
          {"case": _words("case"), "seed": _words("seed"), "block_size": _words("block_size"),
           "n_blocks": _words("n_blocks")}),
    Entry("make_optimizer", quadlab.make_optimizer, {"name": "adam", "beta1": 0.5, "beta2": 0.9,
                                                     "eps": 1e-8},
          {"name": _words("optimizer"), "beta1": _words("beta1"), "beta2": _words("beta2"),
           "eps": _words("eps")}),
    Entry("adam_constants", quadlab.adam_constants, {"problem": HETERO, "w0": W0},
          {"problem": _words("problem"), "w0": _words("w0")}),
    Entry("estimate_r", quadlab.estimate_r, {"problem": HETERO, "trials": 5, "seed": 0,
                                             "std": 1.0},
          {"problem": _words("problem"), "trials": _words("trials"), "seed": _words("seed"),
           "std": _words("std")}),
    Entry("run", quadlab.run, {"problem": HETERO, "optimizer": "adam", "lr": 1e-3, "w0": W0,
                               "steps": 20, "beta2": 0.99},
          {"problem": _words("problem"), "optimizer": _words("optimizer"), "lr": _words("lr"),
           "w0": _words("w0"), "steps": _words("steps"), "beta2": _words("beta2")}),
    Entry("run(noise)", quadlab.run, {"problem": HETERO, "optimizer": "gd", "lr": 1e-4,
                                      "w0": W0, "steps": 10,
                                      "noise": quadlab.GaussianNoise(), "batch_size": 2,
                                      "seed": 1},
          {"noise": _words("noise"), "batch_size": _words("batch_size"),
           "seed": _words("seed")}),
    Entry("tune_lr", quadlab.tune_lr, {"problem": HETERO, "optimizer": "gd", "w0": W0,
                                       "steps": 20, "tol": 1e-3},
          {"w0": _words("w0"), "steps": _words("steps"), "tol": _words("tol"),
           "grid": _words("grid")}),
    Entry("iterations_to_tolerance", quadlab.iterations_to_tolerance,
          {"gaps": np.array([1.0, 0.5, 1e-4]), "tol": 1e-3},
          {"gaps": _words("gaps"), "tol": _words("tol")}),
    Entry("divergence_steps", quadlab.divergence_steps, {"gaps": np.array([1.0, np.inf])},
          {"gaps": _words("gaps")}),
    Entry("underflow_steps", quadlab.underflow_steps, {"gaps": np.array([1.0, 0.5])},
          {"gaps": _words("gaps")}),
    Entry("GaussianNoise", quadlab.GaussianNoise, {"cov": "isotropic", "scale": 1.0},
          {"cov": _words("cov"), "scale": _words("scale")}),
    Entry("LeastSquaresNoise", quadlab.LeastSquaresNoise,
          {"n_samples": 16, "sigma": 1.0, "replace": True, "data_seed": 0},
          {"n_samples": _words("n_samples"), "sigma": _words("sigma"),
           "replace": _words("replace"), "data_seed": _words("data_seed", "seed")}),
    Entry("sample_gradients", quadlab.sample_gradients,
          {"problem": HETERO, "noise": quadlab.GaussianNoise(), "w": W0, "batch_size": 1,
           "n_samples": 4, "seed": 0},
          {"problem": _words("problem"), "noise": _words("noise"), "w": _words("w"),
           "batch_size": _words("batch_size"), "n_samples": _words("n_samples"),
           "seed": _words("seed")}),
    Entry("trajectory_statistics", quadlab.trajectory_statistics,
          {"problem": HETERO, "optimizer": "adam", "lr": 1e-3, "w0": W0, "steps": 10,
           "average_from": 5, "beta2": 0.9},
          {"lr": _words("lr"), "w0": _words("w0"), "steps": _words("steps"),
           "average_from": _words("average_from")}),
    Entry("run_study", studies.run_study, {"cases": ["hetero"], "seeds": [0], "steps": 20,
                                           "tol": 1e-2},
          {"cases": _words("case"), "seeds": _words("seed"), "steps": _words("steps"),
           "tol": _words("tol"), "spectra": _words("spectra"),
           "optimizers": _words("optimizer")}),
    Entry("eps_study", studies.eps_study, {"cases": ["hetero"], "seeds": [0], "rel_eps": [1.0],
                                           "steps": 20, "tol": 1e-2},
          {"cases": _words("case"), "seeds": _words("seed"), "rel_eps": _words("rel_eps"),
           "steps": _words("steps"), "tol": _words("tol")}),
    Entry("newton_study", studies.newton_study,
          {"problems": ["hetero-diagonal"], "noises": ["none"], "optimizers": ["adam"],
           "beta2s": [0.9], "lr": 1e-3, "steps": 20, "trajectories": 2},
          {"problems": _words("problem"), "noises": _words("noise"),
           "optimizers": _words("optimizer"), "beta2s": _words("beta2"), "lr": _words("lr"),
           "steps": _words("steps"), "trajectories": _words("trajectories"),
           "sigma": _words("sigma"), "batch_size": _words("batch_size"),
           "seed": _words("seed")}),
    Entry("batch_study", studies.batch_study,
          {"batch_sizes": [1, 2], "optimizers": ["sgd"], "steps": 10, "repeats": 2},
          {"case": _words("case"), "noise": _words("noise"),
           "noise_to_signal": _words("noise_to_signal"), "criterion": _words("criterion"),
           "batch_sizes": _words("batch_size"), "optimizers": _words("optimizer"),
           "steps": _words("steps"), "repeats": _words("repeats"), "tail": _words("tail"),
           "seed": _words("seed")}),
    Entry("settings_for", studies.settings_for, {"command": "newton", "quick": True},
          {"command": _words("command"), "quick": _words("quick")}),
    Entry("softsign", studies.softsign, {"g": np.array([1.0, -2.0]), "eps": 1.0},
          {"g": _words("g"), "eps": _words("eps")}),
]

#: public names that are result types, exceptions or constants (no inputs to fuzz)
NOT_CALLED = {"CASES", "OPTIMIZERS", "AdamConstants", "DivergenceError", "DivergenceWarning",
              "OptimizerSpec", "Problem", "TrajectoryStatistics", "TuneResult", "UnderflowError",
              "UnderflowWarning", "DEFAULT_OPTIMIZERS", "EPS_VARIANTS", "SETTINGS", "BatchCurve",
              "BatchResult", "EpsResult", "EpsRow", "NewtonResult", "NewtonRow", "StudyResult",
              "StudyRun", "RunGaps", "batch_studies"}


def test_every_public_entry_point_is_fuzzed():
    fuzzed = {e.name.split("(")[0].split(".")[0] for e in ENTRIES}
    public = set(quadlab.__all__) | set(studies.__all__)
    assert public - fuzzed - NOT_CALLED == set()


def _floats(obj, depth: int = 0):
    """Every float array or float reachable in a result (dataclasses, tuples, dicts)."""
    if depth > 4:
        return
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        yield obj
    elif isinstance(obj, float):
        yield np.array(obj)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _floats(getattr(obj, f.name), depth + 1)
    elif isinstance(obj, tuple | list):
        for x in obj[:50]:
            yield from _floats(x, depth + 1)
    elif isinstance(obj, dict):
        for x in list(obj.values())[:50]:
            yield from _floats(x, depth + 1)


#: results whose NaN has a documented meaning (not silent): the study tables' "n/a" ratios
NAN_DOCUMENTED = {"eps_study", "batch_study", "newton_study", "run_study", "divergence_steps",
                  "underflow_steps", "iterations_to_tolerance"}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_input_is_refused_by_name_or_handled(entry, data):
    arg = data.draw(st.sampled_from(sorted(entry.names)), label="argument")
    bad = data.draw(st.sampled_from(BAD), label="value")
    kwargs = {**entry.kwargs, arg: bad}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", quadlab.DivergenceWarning)
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            result = entry.fn(*entry.args, **kwargs)
        except (ValueError, TypeError) as exc:
            message = str(exc).lower()
            assert any(w.lower() in message for w in entry.names[arg]), (
                f"{entry.name}({arg}={bad!r}) raised {type(exc).__name__} without naming "
                f"{arg}: {exc}")
            return
    if entry.name not in NAN_DOCUMENTED:
        for arr in _floats(result):
            assert not np.isnan(arr).any(), f"{entry.name}({arg}={bad!r}) returned a NaN"
