"""A whole blockwise run holds its memory budget, counted in live tensors.

The planner's arithmetic (graphs, stacked tangents, Lanczos vectors) is tested piece by piece in
``test_hvp_modes.py`` and ``test_lanczos_groups.py``; here the instrument is
:class:`nets.engine.memory.LiveBytes`, which counts every tensor storage a run creates while it
is alive: the kept or rebuilt gradient graphs, the double backwards' transients, the Lanczos
basis, start vectors, work stack and chunk buffer. Its peak over a whole
:func:`nets.blockwise_spectrum` must stay within ``info["max_memory"]`` at the least budget and
at fixed budgets above it. The per-tangent estimate is the measured one: it counts what the
products hold. (The default graph bound is an estimate, not a bound, on these small models'
double backwards: ``docs/engine.md``.)

Before these tests the runs went past their budgets, by three causes each found by such a
count: a single probe of the largest block's Lanczos vectors larger than the room the budget
left them (a float32 MLP ran 2.4 times its least budget); graphs kept by the data check beside a
larger measured tangent that then planned one graph at a time (both graphs stayed alive); and a
rest under two tangents split in halves, the vectors' half then taken by the one tangent a
product holds.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import nets
from nets.engine.memory import LiveBytes


@pytest.fixture(scope="module")
def layernorm_mlp():
    """A float32 MLP with LayerNorm (64 → 128 → 10, 9,610 parameters), two batches of 48: a
    block of 8,192 parameters whose Lanczos vectors outweigh one graph and one tangent."""
    g = torch.Generator().manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.LayerNorm(128),
                                torch.nn.Tanh(), torch.nn.Linear(128, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / 8)
    x = torch.randn(96, 64, generator=g)
    y = torch.randint(0, 10, (96,), generator=g)
    return model, torch.nn.functional.cross_entropy, [(x[:48], y[:48]), (x[48:], y[48:])]


#: The LayerNorm MLP's largest block (``8,192`` parameters) and the Lanczos steps run here.
DIM, STEPS = 8192, 6
#: One probe of that block's Lanczos vectors: six float32 basis rows, the start, the vector
#: passed to the products and two copies of its product, a float64 work row and chunk row.
SMALLEST_GROUP = (STEPS + 4) * DIM * 4 + 2 * 8 * DIM


def _run(problem, max_memory) -> tuple[int, dict]:
    model, loss_fn, data = problem[:3]
    info: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no run below its least: a warning would say so
        with LiveBytes() as count:
            nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=STEPS, probes=3,
                                    max_memory=max_memory, measure_tangents=True, info=info)
    return count.peak, info


@pytest.mark.parametrize("extra", [None, 0.5, 2.0], ids=["least", "least+half-graph",
                                                         "least+two-graphs"])
@pytest.mark.parametrize("problem", ["mlp_problem", "attention_problem", "layernorm_mlp"])
def test_a_whole_run_holds_its_budget_in_live_tensors(problem, extra, request):
    """The live tensors' peak of a whole run is at most its budget: ``"least"`` and that
    least plus half a graph or two graphs (one graph at a time, and every graph kept, on
    these problems)."""
    prob = request.getfixturevalue(problem)
    least = _run(prob, "least")[1]
    budget = "least" if extra is None else least["max_memory"] + int(
        extra * least["graph_bytes"])
    peak, info = _run(prob, budget)
    assert info["tangent_estimate"] == "measured"
    assert 0 < peak <= info["max_memory"], (info["graph_strategy"], info["lanczos_groups"])


def test_the_least_budget_grows_to_hold_one_probe_of_the_largest_block(layernorm_mlp):
    """On the LayerNorm MLP one probe of the 8,192-parameter block (six float32 basis rows,
    the start, the product's vector and two copies, a float64 work row and chunk row) is more
    than half a tangent: ``"least"`` makes room for it beside a graph and a tangent."""
    peak, info = _run(layernorm_mlp, "least")
    assert SMALLEST_GROUP > info["tangent_bytes"] // 2
    largest = info["max_memory"] - info["tangent_bytes"] - SMALLEST_GROUP
    assert largest >= info["graph_bytes"]  # the largest batch's graph, with its gradient
    assert peak <= info["max_memory"]


def test_a_given_budget_below_the_least_runs_at_it_and_warns_with_the_fix(layernorm_mlp):
    """A fixed budget that holds a graph and a tangent but not the Lanczos vectors' smallest
    group (one probe of the largest block) warns, naming the least; the run holds no more
    than that least (its vectors get their room, as at ``"least"``, rather than none: one
    group per probe and block), and the least it names runs without the warning."""
    model, loss_fn, data = layernorm_mlp
    least = _run(layernorm_mlp, "least")[1]
    products = least["max_memory"] - SMALLEST_GROUP  # a graph and a tangent
    info: dict = {}
    with pytest.warns(UserWarning, match=r"below the least this run holds") as rec, \
            LiveBytes() as count:
        nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=STEPS, probes=3,
                                info=info, max_memory=products, measure_tangents=True)
    fix = int(str(rec[0].message).split("Pass max_memory >= ")[1].split(",")[0])
    assert fix == least["max_memory"] > products
    assert count.peak <= fix
    assert info["lanczos_groups"] == least["lanczos_groups"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=STEPS, probes=1,
                                max_memory=fix, measure_tangents=True)
