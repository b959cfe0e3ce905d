"""Blockwise Lanczos in groups of blocks (and chunks of probes) within a memory budget
(:mod:`nets.engine.groups`, run by :func:`nets.engine.spectrum.operator_spectra`)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nets
import nets.engine.spectrum as spectrum
from nets.engine.blocks import resolve_blocks
from nets.engine.budget import LEAN_SHARE
from nets.engine.groups import (
    lanczos_group_floor_bytes,
    lanczos_groups,
    lanczos_probe_bytes,
    lanczos_work_bytes,
)
from nets.engine.hvp import BlockHVP
from nets.engine.spectrum import CHUNK_SHARE, operator_spectra


@given(per_probe=st.lists(st.integers(0, 50), min_size=1, max_size=12),
       probes=st.integers(1, 6), limit=st.integers(0, 300),
       lean=st.one_of(st.none(), st.integers(0, 300)), data=st.data())
def test_groups_cover_every_probe_of_every_block_once_within_the_budget(per_probe, probes,
                                                                        limit, lean, data):
    shared = data.draw(st.one_of(st.none(), st.lists(st.integers(0, 20), min_size=len(per_probe),
                                                     max_size=len(per_probe))))
    groups = lanczos_groups(per_probe, probes, limit, lean, shared)
    common = [0] * len(per_probe) if shared is None else shared
    cap = limit if lean is None else min(limit, lean)
    seen = {b: [] for b in range(len(per_probe))}
    order = []
    for group in groups:
        assert group, "an empty group"
        members = [b for b, _, _ in group]
        assert len(set(members)) == len(members), "a block twice in one group"
        size = sum((p1 - p0) * per_probe[b] for b, p0, p1 in group) + max(
            (p1 - p0) * common[b] for b, p0, p1 in group)
        assert size <= cap or len(group) == 1, (group, size, cap)
        for b, p0, p1 in group:
            assert 0 <= p0 < p1 <= probes
            seen[b].append((p0, p1))
            order.append((b, p0))
    assert order == sorted(order)  # blocks in order, a block's chunks in order
    for b, chunks in seen.items():
        assert [p for c in sorted(chunks) for p in range(*c)] == list(range(probes))
        each = per_probe[b] + common[b]
        whole = probes * each <= limit
        assert (len(chunks) == 1) if whole else all(
            (p1 - p0) * each <= limit or p1 - p0 == 1 for p0, p1 in chunks)


def test_groups_by_hand():
    # everything fits: one group
    assert lanczos_groups([10, 20, 30], 2, 1000) == [[(0, 0, 2), (1, 0, 2), (2, 0, 2)]]
    # lean packs whole blocks up to 60 bytes; probes are not split for it
    assert lanczos_groups([10, 20, 30], 2, 1000, lean=60) == [[(0, 0, 2), (1, 0, 2)],
                                                               [(2, 0, 2)]]
    # a limit below one block's probes splits them, as many per chunk as fit
    assert lanczos_groups([10, 40], 3, 90) == [[(0, 0, 3)], [(1, 0, 2)], [(1, 2, 3)]]
    # nothing fits: one probe of one block per group
    assert lanczos_groups([5, 5], 2, 0) == [[(0, 0, 1)], [(0, 1, 2)], [(1, 0, 1)],
                                            [(1, 1, 2)]]
    # a shared buffer counts once per group, at its largest piece's size: 2·(10+20) + 2·8
    # fits 76 bytes, where counting it per block (2·(10+4) + 2·(20+8) = 84) would not
    assert lanczos_groups([10, 20], 2, 76, shared=[4, 8]) == [[(0, 0, 2), (1, 0, 2)]]
    assert lanczos_groups([10, 20], 2, 75, shared=[4, 8]) == [[(0, 0, 2)], [(1, 0, 2)]]
    # and it counts when a block's probes are split: 3·(10+10) > 50, so two per chunk
    assert lanczos_groups([10], 3, 50, shared=[10]) == [[(0, 0, 2)], [(0, 2, 3)]]


@pytest.mark.parametrize("bad, match", [(dict(probes=0), "probes"), (dict(limit=-1), "limit"),
                                        (dict(lean=-2), "lean"), (dict(shared=[1]), "shared"),
                                        (dict(shared=[1, -1]), "shared")])
def test_bad_group_arguments(bad, match):
    kw = dict(per_probe=[1, 2], probes=2, limit=10, lean=None) | bad
    with pytest.raises(ValueError, match=match):
        lanczos_groups(**kw)


def _spectra(problem, **kw):
    model, loss_fn, data = problem[:3]
    info: dict = {}
    out = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=6, probes=3, info=info,
                                  mode="reverse-block", **kw)
    return out, info


@pytest.mark.parametrize("problem", ["mlp_problem", "attention_problem"])
def test_groups_give_the_spectra_of_one_lockstep_run(problem, request, monkeypatch):
    """Groups of blocks and chunks of probes: the same tridiagonals to round-off."""
    p = request.getfixturevalue(problem)
    one, info_one = _spectra(p, max_memory=2**33)  # a given budget: no lean grouping
    assert info_one["lanczos_groups"] == 1
    # a budget that leaves room for about one probe of the largest block at a time
    monkeypatch.setattr(BlockHVP, "vector_budget", lambda self: (6 * 60 * 8, None))
    many, info_many = _spectra(p, max_memory=2**33)
    assert info_many["lanczos_groups"] > 2
    assert info_many["products"] == info_one["products"]  # no extra products
    for name, s in one.items():
        scale = np.abs(s.nodes).max()
        np.testing.assert_allclose(many[name].nodes, s.nodes, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(many[name].weights, s.weights, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(many[name].n_steps, s.n_steps)
        np.testing.assert_array_equal(many[name].probes, s.probes)


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_float32_vectors_are_budgeted_at_their_own_dtype(attention_problem, monkeypatch,
                                                         share):
    """The basis is stored in the vectors' dtype: a float32 model's vectors count 4 bytes per
    number. A budget they fit at 4 bytes (with the chunk buffer's share taken out) runs every
    block in one group (a float64 basis would need two); half of it splits them as the packing
    at 4 bytes says."""
    model, loss_fn, data = attention_problem[:3]
    model = copy.deepcopy(model).float()  # the tokens stay integers
    blocks = resolve_blocks(model, None)
    probes, steps = 3, 6
    assert len(data) > 1  # the operator holds two copies of the products (the batches' sum)
    per_probe = [lanczos_probe_bytes(b.dim, steps, 4, products=2) for b in blocks]
    assert sum(lanczos_probe_bytes(b.dim, steps, 8, products=2)
               for b in blocks) > 1.5 * sum(per_probe)
    work = [lanczos_work_bytes(b.dim) for b in blocks]
    budget = int(probes * (sum(per_probe) + max(work)) / (1 - CHUNK_SHARE) * share) + 1
    monkeypatch.setattr(BlockHVP, "vector_budget", lambda self: (budget, None))
    info: dict = {}
    nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=steps, probes=probes,
                            info=info, mode="reverse-block", max_memory=2**33)
    expected = lanczos_groups(per_probe, probes, budget - int(budget * CHUNK_SHARE),
                              shared=work)
    assert info["lanczos_groups"] == len(expected)
    assert (len(expected) == 1) == (share == 1.0)


def test_probe_bytes_count_basis_and_products_and_work_bytes_a_float64_row():
    """k = min(steps, d) basis rows, the start vector, the vector given to the products and its
    product, in the vectors' dtype; the shared work stack one float64 row per probe."""
    assert lanczos_probe_bytes(100, 10, 4) == (10 + 3) * 100 * 4
    assert lanczos_probe_bytes(3, 10, 8) == (3 + 3) * 3 * 8  # at most d steps
    assert lanczos_probe_bytes(0, 10, 4) == 0
    assert lanczos_probe_bytes(100, 10, 4, products=2) == (10 + 4) * 100 * 4  # batches' sum
    assert lanczos_work_bytes(100) == 800 and lanczos_work_bytes(0) == 0
    with pytest.raises(ValueError, match="steps"):
        lanczos_probe_bytes(10, 0, 4)
    with pytest.raises(ValueError, match="dim"):
        lanczos_work_bytes(-1)
    with pytest.raises(ValueError, match="products"):
        lanczos_probe_bytes(10, 3, 4, products=0)


def test_group_floor_is_one_probe_its_work_row_and_a_float64_row_for_a_narrow_basis():
    """The smallest group of a block: one probe's own vectors and its float64 work row, and
    for a float32 basis one float64 row of the buffer reorthogonalization reads it into."""
    assert lanczos_group_floor_bytes(100, 10, 4) == (10 + 3) * 100 * 4 + 800 + 800
    assert lanczos_group_floor_bytes(100, 10, 8) == (10 + 3) * 100 * 8 + 800  # read as is
    assert lanczos_group_floor_bytes(100, 10, 4, products=2) == (10 + 4) * 100 * 4 + 1600
    with pytest.raises(ValueError, match="products"):
        lanczos_group_floor_bytes(10, 3, 4, products=0)


def test_the_run_reserves_its_largest_blocks_floor(attention_problem, monkeypatch):
    """operator_spectra makes room for the smallest group of its largest block (the floor
    of every block is at most that) before it sizes the groups."""
    model, loss_fn, data = attention_problem[:3]
    op = BlockHVP(model, loss_fn, data, resolve_blocks(model, None))
    asked = []
    reserve = BlockHVP.reserve_vectors
    monkeypatch.setattr(BlockHVP, "reserve_vectors",
                        lambda self, least: asked.append(least) or reserve(self, least))
    operator_spectra(op, lanczos_steps=4, probes=2, seed=0)
    itemsize = next(model.parameters()).dtype.itemsize
    assert asked == [max(lanczos_group_floor_bytes(b.dim, 4, itemsize, op.product_copies)
                         for b in op.blocks)]
    assert asked[0] == lanczos_group_floor_bytes(max(b.dim for b in op.blocks), 4, itemsize,
                                                 op.product_copies)


@pytest.mark.parametrize("limit", [2**40, 6000])
def test_the_chunk_buffer_comes_out_of_the_vectors_budget(mlp_problem, monkeypatch, limit):
    """Lanczos reads the basis through a float64 buffer of at most CHUNK_SHARE of the vectors'
    budget (the device default when that is smaller), and the groups pack the vectors into what
    the buffer leaves."""
    monkeypatch.setattr(BlockHVP, "vector_budget", lambda self: (limit, None))
    seen = []
    run = spectrum.lanczos

    def recording(*args, chunk_bytes=None, **kw):
        seen.append(chunk_bytes)
        return run(*args, chunk_bytes=chunk_bytes, **kw)

    monkeypatch.setattr(spectrum, "lanczos", recording)
    _, info = _spectra(mlp_problem)
    chunk = min(nets.engine.lanczos.REORTH_CHUNK_BYTES, int(limit * CHUNK_SHARE))
    assert set(seen) == {chunk} and (chunk < nets.engine.lanczos.REORTH_CHUNK_BYTES) == (
        limit == 6000)
    dims = [30, 6, 18, 3]
    expected = lanczos_groups([lanczos_probe_bytes(d, 6, 8, products=2) for d in dims], 3,
                              limit - chunk,
                              shared=[lanczos_work_bytes(d) for d in dims])
    assert info["lanczos_groups"] == len(expected) == len(seen)


def test_default_budget_groups_blocks_to_the_kept_graphs(attention_problem):
    """With the default budget and every graph kept, the vectors in flight stay within half the
    graphs' bytes (whole blocks); a given budget runs all blocks in lockstep."""
    model, loss_fn, data = attention_problem[:3]
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    limit, lean = op.vector_budget()
    held = sum(op.plan.graph_sizes()[i] for i in range(len(op.data)))
    assert lean == int(held * LEAN_SHARE) and limit > lean
    given = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=2**33)
    assert given.vector_budget()[1] is None
    per_probe = [lanczos_probe_bytes(b.dim, 40, 8) for b in blocks]
    steps = 40 if sum(per_probe) * 30 > held else 1
    info: dict = {}
    spectra = operator_spectra(op, lanczos_steps=steps, probes=30, info=info)
    chunk = min(nets.engine.lanczos.REORTH_CHUNK_BYTES, int(limit * CHUNK_SHARE))
    assert op.product_copies == 2  # two batches: their sum and one batch's products
    expected = len(lanczos_groups([lanczos_probe_bytes(b.dim, steps, 8, products=2)
                                   for b in blocks], 30,
                                  limit - chunk, lean,
                                  shared=[lanczos_work_bytes(b.dim) for b in blocks]))
    assert info["lanczos_groups"] == expected > 1
    assert all(s.nodes.shape == (30, steps) for s in spectra.values())


def test_one_graph_at_a_time_groups_up_to_the_limit(attention_problem):
    """Rebuilding the graphs costs once per group: with one graph at a time there is no lean
    bound, so groups are as large as the budget's limit allows."""
    model, loss_fn, data = attention_problem[:3]
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    largest = max(op.plan.graph_sizes()[i] for i in range(len(op.data)))
    tangent = op.plan.per_tangent()
    tight = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block",
                     max_memory=largest + tangent + tangent // 2)
    assert tight._strategy()[0] == "one-at-a-time"
    # one tangent's room for the products (half the rest is less), the rest the vectors'
    assert tight.vector_budget() == (tangent // 2, None)


def test_progress_counts_steps_over_every_group(mlp_problem, monkeypatch):
    monkeypatch.setattr(BlockHVP, "vector_budget", lambda self: (0, None))
    seen = []
    _spectra(mlp_problem, callback=lambda j, n: seen.append((j, n)))
    dims = [30, 6, 18, 3]  # one group per probe of each block; a block takes <= dim steps
    expected = [(6 * (3 * b + p) + j, 6 * 12) for b, d in enumerate(dims) for p in range(3)
                for j in range(1, min(6, d) + 1)]
    assert seen == expected


def test_progress_bar_ends_full_when_blocks_stop_early(mlp_problem, monkeypatch):
    """Blocks of dimension 3 and 6 stop before 6 steps: the bar still advances, never backwards,
    to its total (every group's end)."""
    monkeypatch.setattr(BlockHVP, "vector_budget", lambda self: (0, None))
    bars = []

    class Recorder(spectrum.Progress):
        def __init__(self, total, desc="", **kw):
            super().__init__(total, desc, **kw)
            self.seen = []
            bars.append(self)

        def update_to(self, done, note=""):
            self.seen.append(int(done))
            super().update_to(done, note)

    monkeypatch.setattr(spectrum, "Progress", Recorder)
    _spectra(mlp_problem, progress=True)
    (bar,) = bars
    assert bar.seen == sorted(bar.seen) and bar.seen[-1] == bar.total == 6 * 12


def test_vector_budget_before_the_graph_is_measured(mlp_problem):
    model, loss_fn, data = mlp_problem[:3]
    op = BlockHVP(model, loss_fn, data, resolve_blocks(model, None), mode="forward")
    limit, lean = op.vector_budget()
    assert lean is None and limit == op.max_memory // 2
    assert torch.is_tensor(next(iter(op.params.values())))
