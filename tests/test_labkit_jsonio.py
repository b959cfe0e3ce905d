"""The one JSON policy: round trips, non-finite floats, numpy types, strictness."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.jsonio import as_float, dumps, loads, to_jsonable


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_every_float_round_trips(x):
    back = as_float(loads(dumps({"x": x}))["x"])
    assert (math.isnan(x) and math.isnan(back)) or back == x


def test_nonfinite_are_strings_and_output_is_strict_json():
    text = dumps([math.inf, -math.inf, math.nan, np.float32(np.inf)])
    assert json.loads(text) == ["inf", "-inf", "nan", "inf"]
    assert "Infinity" not in text and "NaN" not in text
    with pytest.raises(ValueError, match="bare NaN"):
        loads('{"x": NaN}')


def test_numpy_dataclasses_paths():
    @dataclasses.dataclass(frozen=True)
    class R:
        a: np.ndarray
        b: tuple

    out = to_jsonable({1: R(np.arange(3, dtype=np.int64), (np.float64(0.5), np.bool_(True))),
                       "p": Path("/x/y")})
    assert out == {"1": {"a": [0, 1, 2], "b": [0.5, True]}, "p": "/x/y"}
    assert type(out["1"]["a"][0]) is int


def test_refusals_name_the_problem():
    with pytest.raises(TypeError, match="set"):
        to_jsonable({1, 2})
    with pytest.raises(ValueError, match="expected a number"):
        as_float("infinity")
    with pytest.raises(ValueError):
        as_float(None)
