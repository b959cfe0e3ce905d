"""Results files: full validation on resume, provenance checks, the probe loop, --out checks."""

import json
import os
import time

import numpy as np
import pytest
import torch

from labkit.jsonio import content_checksum
from nets.engine.results import (
    ResultsFileError,
    check_out_path,
    fingerprint,
    load_spectra,
    resume_spectra,
    save_spectra,
)
from nets.engine.slq import BlockSpectrum

BLOCKS = ["a", "b"]
SETTINGS = {"model": "toy", "probes": 3, "steps": 2}


def _probe(p: int) -> dict[str, BlockSpectrum]:
    """A deterministic stand-in for one probe's SLQ result (2 nodes per block)."""
    out = {}
    for i, name in enumerate(BLOCKS):
        nodes = np.array([[p + i, p + i + 1.5]])
        out[name] = BlockSpectrum(name, 3 + i, nodes, np.array([[0.25, 0.75]]),
                                  np.array([2]), np.array([p]))
    return out


def _resume(out, calls=None, **kw):
    def compute(p):
        if calls is not None:
            calls.append(p)
        return _probe(p)

    opts = dict(blocks=BLOCKS, probes=3, compute_probe=compute, code="c1", fingerprint="f1",
                steps=2)
    opts.update(kw)
    return resume_spectra(out, SETTINGS, **opts)


def test_resume_computes_only_missing_probes_and_sorts(tmp_path):
    out = tmp_path / "r.json"
    save_spectra(out, SETTINGS, _probe(2), code="c1", fingerprint="f1")
    calls = []
    got = _resume(out, calls)
    assert calls == [0, 1]
    for name in BLOCKS:
        assert got[name].probe_ids.tolist() == [0, 1, 2]
        ref = BlockSpectrum.concatenate([_probe(p)[name] for p in range(3)])
        np.testing.assert_array_equal(got[name].nodes, ref.nodes)
    assert load_spectra(out).spectra["a"].probe_ids.tolist() == [2, 0, 1]
    calls.clear()
    _resume(out, calls)
    assert calls == []  # complete: nothing recomputed


def _doctored(tmp_path, edit):
    out = tmp_path / "r.json"
    save_spectra(out, SETTINGS, {k: BlockSpectrum.concatenate(
        [_probe(0)[k], _probe(1)[k]]) for k in BLOCKS}, code="c1", fingerprint="f1")
    doc = json.loads(out.read_text())
    edit(doc)
    doc["checksum"] = content_checksum(doc)  # a consistent checksum: the structure must catch it
    out.write_text(json.dumps(doc))
    return out


def _set(path, value):
    def edit(doc):
        d = doc
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


CORRUPTIONS = {
    "repeated probe ids": (_set(["blocks", "a", "probe_ids"], [0, 0]), "repeated"),
    "inconsistent probe ids": (_set(["blocks", "b", "probe_ids"], [0, 2]), "different probes"),
    "missing block": (lambda d: d["blocks"].pop("b"), "missing \\['b'\\]"),
    "extra block": (lambda d: d["blocks"].update(c=d["blocks"]["a"]), "unexpected \\['c'\\]"),
    "NaN node": (_set(["blocks", "a", "nodes"], [[0.0, "nan"], [1.0, 2.0]]), "numbers only"),
    "negative weight": (_set(["blocks", "a", "weights"], [[-0.5, 1.5], [0.5, 0.5]]),
                        "non-negative"),
    "ragged nodes": (_set(["blocks", "a", "nodes"], [[0.0], [1.0, 2.0]]), "rows"),
    "weights not summing to 1": (_set(["blocks", "a", "weights"], [[0.5, 0.1], [0.5, 0.5]]),
                                 "sum to 1"),
    "missing key": (lambda d: d.pop("fingerprint"), "missing"),
    "block missing a key": (lambda d: d["blocks"]["a"].pop("n_steps"), "exactly"),
    "bad dim": (_set(["blocks", "a", "dim"], 0), "dim"),
    "probe id out of range": (_set(["blocks", "a", "probe_ids"], [0, 7]), "different|outside"),
    "other settings": (_set(["settings", "steps"], 5), "other settings"),
    "other code": (_set(["code"], "c0"), "other code"),
    "other model or data": (_set(["fingerprint"], "f0"), "other model parameters or data"),
    "other format": (_set(["format"], 1), "format"),
    "not an object": (lambda d: d.clear(), "format"),
}


@pytest.mark.parametrize("what", list(CORRUPTIONS))
def test_resume_refuses_inconsistent_files_with_the_fix(tmp_path, what):
    edit, reason = CORRUPTIONS[what]
    out = _doctored(tmp_path, edit)
    calls = []
    with pytest.raises(ResultsFileError, match=reason) as err:
        _resume(out, calls)
    assert "use --overwrite or another --out" in str(err.value)
    assert calls == []  # refused before computing anything
    got = _resume(out, calls, overwrite=True)  # the fix works
    assert got["a"].probe_ids.tolist() == [0, 1, 2]


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"[1, 2]", b'{"format": 2}',
                                  b'{"format": 2, "x": NaN}'])
def test_unreadable_files_are_refused(tmp_path, data):
    out = tmp_path / "r.json"
    out.write_bytes(data)
    with pytest.raises(ResultsFileError, match="another --out"):
        _resume(out)


def test_edited_file_fails_the_checksum(tmp_path):
    out = tmp_path / "r.json"
    save_spectra(out, SETTINGS, _probe(0), code="c1", fingerprint="f1")
    out.write_text(out.read_text().replace('"dim": 3', '"dim": 4'))
    with pytest.raises(ResultsFileError, match="checksum"):
        load_spectra(out)


def test_non_finite_results_are_never_written(tmp_path):
    bad = _probe(0)
    bad["a"].nodes[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        save_spectra(tmp_path / "r.json", SETTINGS, bad, code="c", fingerprint="f")
    assert not list(tmp_path.iterdir())


def test_out_path_checked_before_computing(tmp_path):
    calls = []
    with pytest.raises(ResultsFileError, match="is a directory"):
        _resume(tmp_path, calls)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ResultsFileError, match="not a directory"):
        _resume(blocker / "sub" / "r.json", calls)
    assert calls == []
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ResultsFileError, match="permission"):
            check_out_path(ro / "r.json")


def test_leftover_temporary_files_are_removed(tmp_path):
    out = tmp_path / "r.json"
    stale = tmp_path / ".r.json.k1l2.tmp"
    stale.write_bytes(b"\0" * 1000)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    _resume(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_wrong_blocks_from_compute_are_refused(tmp_path):
    with pytest.raises(ValueError, match="expected"):
        _resume(tmp_path / "r.json", compute_probe=lambda p: {"a": _probe(p)["a"]})


def test_fingerprint_sees_parameters_and_data():
    m = torch.nn.Linear(2, 2)
    data = [(torch.ones(1, 2), torch.zeros(1, 2))]
    f = fingerprint(m, data)
    assert f == fingerprint(m, [(torch.ones(1, 2), torch.zeros(1, 2))])
    assert f != fingerprint(m, [(torch.ones(1, 2), torch.ones(1, 2))])
    with torch.no_grad():
        m.weight[0, 0] += 1e-7
    assert f != fingerprint(m, data)
    with pytest.raises(TypeError, match="model"):
        fingerprint("not a model", data)


def test_fingerprint_refuses_a_batch_it_cannot_hash_naming_the_entry_and_the_fix():
    m = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"cannot digest an entry of type ndarray in "
                                        r"data\[0\]\[1\].*batches' entries to those "
                                        r"\(e\.g\. a tensor for an array\)"):
        fingerprint(m, [(torch.ones(1, 2), np.zeros((1, 2)))])


def test_fingerprint_of_data_that_is_not_iterable_keeps_its_own_refusal():
    with pytest.raises(TypeError, match="not iterable") as e:
        fingerprint(torch.nn.Linear(2, 2), 3)
    assert "convert the batches" not in str(e.value)
