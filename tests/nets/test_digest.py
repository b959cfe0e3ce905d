"""Digests of tensors (:mod:`nets.engine.digest`): equal exactly when the tensors, their
paths, shapes and dtypes are; the parameter check of data-parallel ranks and the results
files' fingerprints rest on it."""

from __future__ import annotations

import pytest
import torch

from nets.engine.digest import tensors_digest


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {"a": torch.randn(3, 2, generator=g), "b": [torch.arange(4), 2.5, "x", None]}


def test_equal_containers_have_equal_digests_whatever_the_mapping_order():
    x = _tensors()
    assert tensors_digest(x) == tensors_digest(_tensors())
    assert tensors_digest(x) == tensors_digest({"b": x["b"], "a": x["a"]})
    # a view with other strides hashes its values, not its memory layout
    t = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    assert tensors_digest({"t": t.T}) == tensors_digest({"t": t.T.contiguous()})


@pytest.mark.parametrize("change", ["value", "dtype", "shape", "name", "path", "number"])
def test_any_difference_changes_the_digest(change):
    x = _tensors()
    y = _tensors()
    if change == "value":
        y["a"][1, 1] = torch.nextafter(y["a"][1, 1], torch.tensor(10.0))
    elif change == "dtype":
        y["a"] = y["a"].double()
    elif change == "shape":
        y["a"] = y["a"].reshape(2, 3)
    elif change == "name":
        y = {"c": y["a"], "b": y["b"]}
    elif change == "path":
        assert tensors_digest(x, "model") != tensors_digest(x, "data")
        return
    else:
        y["b"][1] = 2.5000001
    assert tensors_digest(x) != tensors_digest(y)


def test_a_digest_refuses_what_it_cannot_hash_by_name():
    with pytest.raises(TypeError, match=r"cannot digest an entry of type object in \.k: a "
                                        r"digest takes tensors"):
        tensors_digest({"k": object()})
