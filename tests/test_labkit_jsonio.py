"""The one JSON policy: round trips, non-finite floats, numpy types, strictness."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.jsonio import (
    as_float,
    check_sealed,
    content_checksum,
    dumps,
    load_file,
    loads,
    seal,
    to_jsonable,
)


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


_leaf = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=4),
                  st.booleans(), st.none())
_docs = st.dictionaries(st.text(min_size=1, max_size=4).filter(lambda k: k != "checksum"),
                        st.recursive(_leaf, lambda c: st.lists(c, max_size=3)
                                     | st.dictionaries(st.text(max_size=3), c, max_size=3),
                                     max_leaves=8), min_size=1, max_size=4)


@given(_docs, st.sampled_from([None, 1, 4]))
def test_sealed_documents_verify_after_any_formatting(doc, indent):
    sealed = seal(doc)
    back = loads(dumps(sealed, indent=indent))
    check_sealed(back, "f.json", "fix it")  # indentation and key order do not matter
    assert back["checksum"] == content_checksum(to_jsonable(doc))


@given(_docs)
def test_any_edit_of_a_sealed_document_is_refused(doc):
    sealed = seal(doc)
    key = sorted(k for k in sealed if k != "checksum")[0]
    edited = {**sealed, key: [sealed[key]]}  # wrap one value: a different content
    with pytest.raises(ValueError, match=r"f.json: checksum mismatch.*fix it"):
        check_sealed(edited, "f.json", "fix it")
    with pytest.raises(ValueError, match=r"f.json: no checksum"):
        check_sealed({k: v for k, v in sealed.items() if k != "checksum"}, "f.json", "fix it")
    with pytest.raises(ValueError, match="not a JSON object"):
        check_sealed([sealed], "f.json", "fix it")


def test_load_file_reads_strict_json_and_names_the_file_and_fix_when_it_cannot(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(dumps({"x": math.inf, "y": [1, 2]}))
    assert load_file(good, "fix it") == {"x": "inf", "y": [1, 2]}
    assert load_file(str(good), "fix it") == {"x": "inf", "y": [1, 2]}
    with pytest.raises(ValueError, match=r"^no file at .*absent\.json; fix it$"):
        load_file(tmp_path / "absent.json", "fix it")
    with pytest.raises(ValueError, match=r"^nothing here, run the writer$"):
        load_file(tmp_path / "absent.json", "fix it", missing="nothing here, run the writer")
    with pytest.raises(ValueError, match=r"^no file at"):  # a folder is not a file
        load_file(tmp_path, "fix it")
    for name, content in (("bad.json", b"{bad"), ("nan.json", b'{"x": NaN}'),
                          ("latin.json", b"\xff\xfe"), ("empty.json", b"")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=rf"{name}: not JSON \(.*\); fix it$"):
            load_file(path, "fix it")
