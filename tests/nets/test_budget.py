"""The memory plan's arithmetic (:class:`nets.engine.budget.MemoryPlan`) on hand-set sizes.

Whole runs under a budget are checked in test_budget_live.py and test_hvp_modes.py; here each
rule is checked on numbers, with the sharing invariants as properties over random sizes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nets.engine.budget import LEAN_SHARE, MemoryPlan

MIB = 2**20


def _plan(**kw) -> MemoryPlan:
    """Batch 0's graph of 10 MiB over 8 samples, 1 MiB of parameters, batches of 8 and 12."""
    fields = dict(max_memory=100 * MIB, least=False, given=True, param_bytes=MIB,
                  samples=(8, 12))
    fields.update(kw)
    plan = MemoryPlan(**{k: v for k, v in fields.items() if k != "graph"})
    plan.measured(fields.get("graph", 10 * MIB), 8)
    return plan


def test_graph_sizes_scale_with_the_samples_and_hold_a_gradient():
    plan = _plan()
    assert plan.graph_sizes() == [11 * MIB, 16 * MIB]  # ⌈10 MiB · 12/8⌉ + 1 MiB
    assert plan.graph_bound() == plan.per_tangent() == 11 * MIB  # a graph and a parameter copy
    plan.tangent_estimate = 3 * MIB
    assert plan.per_tangent() == 3 * MIB


def test_keep_all_exactly_where_every_graph_a_tangent_and_the_vectors_floor_fit():
    need = 11 * MIB + 16 * MIB + 11 * MIB + 2 * MIB  # graphs, one tangent, the vectors' floor
    for budget, expected in ((need, ("keep-all", 27 * MIB)),
                             (need - 1, ("one-at-a-time", 16 * MIB))):
        plan = _plan(max_memory=budget, vectors_least=2 * MIB)
        assert plan.strategy() == expected
        assert plan.strategy(forward=True) == ("none", 0)


def test_the_least_budget_holds_the_largest_graph_a_tangent_and_the_vectors_room():
    plan = _plan(max_memory=1, least=True)
    # batch 0 alone until every batch is known: its graph, a tangent, half a tangent
    assert plan.max_memory == 11 * MIB + 11 * MIB + 11 * MIB // 2
    plan.resolve_least()
    assert plan.max_memory == 16 * MIB + 11 * MIB + 11 * MIB // 2
    plan.vectors_least = 7 * MIB  # a smallest group larger than half a tangent
    plan.resolve_least()
    assert plan.max_memory == 16 * MIB + 11 * MIB + 7 * MIB
    assert plan.strategy()[0] == "one-at-a-time" and not plan.below_least()
    tangents, vectors = plan.room(16 * MIB)
    assert (tangents, vectors) == (11 * MIB, 7 * MIB)


def test_a_given_budget_below_the_least_is_shared_as_the_least():
    plan = _plan(max_memory=20 * MIB)
    assert plan.below_least() and plan.plan_budget() == plan.least_bytes()
    assert plan.room(16 * MIB)[0] == plan.per_tangent()  # one tangent, at least
    default = _plan(max_memory=20 * MIB, given=False)  # the default budget is what it is
    assert not default.below_least() and default.plan_budget() == 20 * MIB


def test_nothing_is_kept_or_shared_before_the_first_graph_is_measured():
    plan = MemoryPlan(max_memory=100 * MIB, least=False, given=True, param_bytes=MIB)
    assert not plan.fits(0, 8)
    assert plan.plan_budget() == 100 * MIB and not plan.below_least()


def test_fits_counts_the_graphs_kept_so_far_and_one_tangent():
    plan = _plan(max_memory=38 * MIB)
    assert plan.fits(0, 8) and plan.fits(11 * MIB, 12)  # 11 + 16 + 11 = 38
    assert not plan.fits(11 * MIB + 1, 12)


def test_lean_groups_only_with_the_default_budget_while_every_graph_is_kept():
    held = 27 * MIB
    assert _plan(given=False).vector_room("keep-all", held)[1] == int(held * LEAN_SHARE)
    assert _plan(given=True).vector_room("keep-all", held)[1] is None
    assert _plan(given=False).vector_room("one-at-a-time", held)[1] is None


def test_chunk_room_is_at_least_one_tangent():
    plan = _plan(max_memory=300 * MIB)
    rest = 300 * MIB - 27 * MIB
    assert plan.chunk_room(27 * MIB) == (rest // 2) // (11 * MIB)
    assert _plan(max_memory=1).chunk_room(27 * MIB) == 1


@given(budget=st.integers(1, 10**10), graph=st.integers(1, 10**8),
       params=st.integers(1, 10**7), tangent=st.one_of(st.none(), st.integers(1, 10**8)),
       floor=st.integers(0, 10**8), held=st.integers(0, 10**9),
       samples=st.lists(st.integers(1, 64), min_size=1, max_size=5),
       least=st.booleans(), given_=st.booleans())
def test_the_rest_beside_the_graphs_is_shared_whole(budget, graph, params, tangent, floor,
                                                    held, samples, least, given_):
    """Tangents and vectors share exactly the rest beside the held graphs (none of it lost or
    counted twice) whenever it holds one tangent; the tangents always get at least one; and the
    vectors get their floor wherever the rest holds it and a tangent."""
    plan = MemoryPlan(max_memory=budget, least=least, given=given_ or least,
                      param_bytes=params, samples=tuple(samples), tangent_estimate=tangent,
                      vectors_least=floor)
    plan.measured(graph, samples[0])
    plan.resolve_least()
    rest = max(plan.plan_budget() - held, 0)
    tangents, vectors = plan.room(held)
    assert tangents >= plan.per_tangent() and vectors >= 0
    if rest >= plan.per_tangent():
        assert tangents + vectors == rest
    if rest >= plan.beside_graphs():
        assert vectors >= plan.vector_floor()
    if least:  # the least budget holds its largest graph, one tangent and the vectors' room
        assert plan.max_memory == plan.least_bytes() and not plan.below_least()
        assert plan.room(max(plan.graph_sizes()))[1] >= plan.least_floor()


@pytest.mark.parametrize("samples, n0, graph", [((5,), 5, 7), ((3, 9), 3, 1000)])
def test_estimated_bytes_round_up(samples, n0, graph):
    plan = MemoryPlan(max_memory=1, least=False, given=True, param_bytes=2, samples=samples)
    plan.measured(graph, n0)
    assert plan.graph_sizes() == [-(-graph * n // n0) + 2 for n in samples]
    # any size measured on batch 0 (a tangent's transient) scales the same way
    assert [plan.scaled(graph, n) for n in samples] == [-(-graph * n // n0) for n in samples]
    assert MemoryPlan(max_memory=1, least=False, given=True, param_bytes=2).scaled(7, 9) == 7
