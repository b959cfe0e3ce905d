"""``all_finite``: the sum's fast path agrees with ``torch.isfinite(t).all()`` exactly."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nets.engine.finite import all_finite

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@given(n=st.integers(0, 300), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from(DTYPES), log_scale=st.floats(-30, 30),
       bad=st.lists(st.tuples(st.integers(0, 299), st.sampled_from(
           [float("nan"), float("inf"), -float("inf")])), max_size=3))
def test_agrees_with_isfinite(n, seed, dtype, log_scale, bad):
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(n, generator=g, dtype=torch.float64) * 10.0**log_scale).to(dtype)
    for i, v in bad:
        if i < n:
            t[i] = v
    assert all_finite(t) == bool(torch.isfinite(t).all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_overflowing_sum_of_finite_entries_is_finite(dtype):
    big = torch.finfo(dtype).max
    t = torch.full((4, 8), big, dtype=dtype)
    assert not torch.isfinite(t.sum())  # the fast path alone would be wrong here
    assert all_finite(t)
    t[1, 3] = float("nan")
    assert not all_finite(t)
    t[1, 3] = -float("inf")
    assert not all_finite(t)
