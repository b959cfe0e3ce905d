"""labkit.cache and labkit.records: keys by module import path, checked files, no pickle."""

import dataclasses
import io
import os
import pickle
import shutil
import time
import uuid
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.atomic import atomic_write_bytes
from labkit.cache import CacheWarning, cache_key, cached, code_version, load_or_compute
from labkit.records import RecordError, decode, encode, read_record, write_record

MODS = ("labkit.records",)


@dataclasses.dataclass(frozen=True)
class Point:
    name: str
    xs: np.ndarray
    meta: dict


@dataclasses.dataclass(frozen=True)
class Other:
    v: int


def _same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b,
                                                                                   equal_nan=True)
    if isinstance(a, float | np.floating) and np.isnan(a):  # numpy scalars too (float32 nan)
        return type(b) is type(a) and np.isnan(b)
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


_leaf = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
         | st.builds(np.float32, st.floats(width=32))
         | st.builds(lambda n, s: np.random.default_rng(s).normal(size=n),
                     st.integers(0, 4), st.integers(0, 9)))
_tree = st.recursive(_leaf, lambda c: st.lists(c, max_size=3) | st.tuples(c, c)
                     | st.dictionaries(st.text(max_size=4) | st.integers(), c, max_size=3),
                     max_leaves=12)


@settings(deadline=None)
@given(_tree)
def test_record_roundtrip_is_exact(tmp_path_factory, obj):
    path = tmp_path_factory.mktemp("r") / "x.npz"
    write_record(path, kind="k", settings={"a": 1}, code="c", result=obj)
    assert _same(obj, read_record(path).result)


def test_dataclasses_only_from_the_allow_list(tmp_path):
    p = Point("p", np.arange(3.0), {1: (np.inf, "s")})
    path = tmp_path / "p.npz"
    write_record(path, kind="k", settings={}, code="c", result=[p], types=[Point])
    assert _same(read_record(path, types=[Point]).result, [p])
    with pytest.raises(RecordError, match="allow-list"):
        read_record(path, types=[Other])
    with pytest.raises(TypeError, match="add its class to types"):
        encode(Other(1), [Point])
    with pytest.raises(TypeError, match="object"):
        encode(np.array([object()]))
    with pytest.raises(RecordError, match="unknown tag"):
        decode({"__reduce__": ["os.system", "echo"]}, [])


def test_cache_hits_and_keys_on_settings_and_code(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"v": np.arange(4), "inf": float("inf")}

    a, hit_a = load_or_compute("t", {"s": 1}, compute, modules=MODS, directory=tmp_path)
    b, hit_b = load_or_compute("t", {"s": 1}, compute, modules=MODS, directory=tmp_path)
    assert (hit_a, hit_b, len(calls)) == (False, True, 1) and _same(a, b)
    load_or_compute("t", {"s": 2}, compute, modules=MODS, directory=tmp_path)
    assert len(calls) == 2
    assert cache_key("t", {"s": 1}, MODS) != cache_key("t", {"s": 1}, ("labkit.cache",))
    # another input fingerprint: recomputed, reported
    with pytest.warns(CacheWarning, match="fingerprint"):
        load_or_compute("t", {"s": 1}, compute, modules=MODS, directory=tmp_path,
                        fingerprint="abc")
    assert len(calls) == 3


def _package(root, body="X = 1\n"):
    name = f"pkg_{uuid.uuid4().hex[:8]}"
    (root / name / "sub").mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "sub" / "__init__.py").write_text("")
    (root / name / "a.py").write_text(body)
    return name


def test_moved_or_edited_module_never_serves_stale_results(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = _package(tmp_path)
    v0, whole0 = code_version([f"{name}.a"]), code_version([name])
    calls = []
    cached("m", {}, lambda: calls.append(1) or 1, modules=[f"{name}.a"], directory=tmp_path)
    (tmp_path / name / "a.py").write_text("X = 2\n")  # edited: new version, recomputed
    assert code_version([f"{name}.a"]) != v0
    cached("m", {}, lambda: calls.append(1) or 2, modules=[f"{name}.a"], directory=tmp_path)
    assert len(calls) == 2
    shutil.move(tmp_path / name / "a.py", tmp_path / name / "sub" / "a.py")
    with pytest.raises(ValueError, match=f"{name}.a"):
        cached("m", {}, lambda: 3, modules=[f"{name}.a"], directory=tmp_path)
    assert code_version([f"{name}.sub.a"]) != v0
    assert code_version([name]) != whole0  # the package's hash sees the move
    for bad in (["no_such_module_xyz"], [f"{name}.nope"], ["a/b.py"], [""]):
        with pytest.raises(ValueError, match="module"):
            code_version(bad)
    with pytest.raises(TypeError):
        code_version(f"{name}.a")


class _Boom:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _npz_bytes(**members):
    buf = io.BytesIO()
    np.savez(buf, **members)
    return buf.getvalue()


def test_damaged_or_crafted_entries_are_reported_and_recomputed(tmp_path):
    marker = tmp_path / "pwned"
    _Boom.marker = marker
    good = tmp_path / "good.npz"
    write_record(good, kind="x", settings={}, code="c", result={"a": np.ones(3)})
    raw = good.read_bytes()
    payloads = {
        "pickle": pickle.dumps(_Boom()),
        "object array": _npz_bytes(meta=np.array([_Boom()], dtype=object)),
        "truncated": raw[: len(raw) // 2],
        "empty": b"",
        "random": np.random.default_rng(0).bytes(500),
        "flipped byte": raw[:-40] + bytes([raw[-40] ^ 1]) + raw[-39:],
        "wrong object": _npz_bytes(meta=np.frombuffer(b'[1, 2]', dtype=np.uint8)),
        "not utf8": _npz_bytes(meta=np.frombuffer(b"\xff\xfe", dtype=np.uint8)),
    }
    calls = []
    expected = load_or_compute("d", {"k": 1}, lambda: calls.append(1) or {"v": 1.5},
                               modules=MODS, directory=tmp_path)[0]
    entry = next(tmp_path.glob("d-*.npz"))
    for what, data in payloads.items():
        entry.write_bytes(data)
        with pytest.warns(CacheWarning, match=entry.name):
            got, hit = load_or_compute("d", {"k": 1}, lambda: calls.append(1) or {"v": 1.5},
                                       modules=MODS, directory=tmp_path)
        assert not hit and got == expected, what
        assert read_record(entry).result == expected, what  # replaced by a good entry
        assert not marker.exists(), what
    assert len(calls) == 1 + len(payloads)
    # a record of another kind copied over the entry is refused too
    write_record(entry, kind="other", settings={"k": 1}, code="c", result={"v": 9})
    with pytest.warns(CacheWarning, match="kind"):
        assert load_or_compute("d", {"k": 1}, lambda: {"v": 1.5}, modules=MODS,
                               directory=tmp_path)[0] == {"v": 1.5}
    assert zipfile.is_zipfile(entry)


def test_stale_temporary_files_are_cleaned(tmp_path):
    target = tmp_path / "r.npz"
    stale = tmp_path / ".r.npz.abc123.tmp"
    stale.write_bytes(b"x" * 100)
    old = time.time() - 60
    os.utime(stale, (old, old))
    fresh = tmp_path / ".r.npz.live99.tmp"
    fresh.write_bytes(b"y")
    atomic_write_bytes(target, b"data")
    assert not stale.exists() and fresh.exists() and target.read_bytes() == b"data"
