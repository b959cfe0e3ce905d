"""The gradient graphs an operator builds, measures and keeps (:mod:`nets.engine.graphs`), and
one tangent's bytes measured on them (:mod:`nets.engine.tangents`), on their own."""

from __future__ import annotations

import torch

from nets.engine.blocks import resolve_blocks
from nets.engine.budget import MemoryPlan
from nets.engine.graphs import GradientGraphs
from nets.engine.memory import saved_by_graph
from nets.engine.products import DoubleBackward, gradient_graph
from nets.engine.tangents import block_tangent_bytes, padded_row_bytes


def _store(model, loss_fn, budget: int, *, keeping: bool = True
           ) -> tuple[GradientGraphs, MemoryPlan]:
    params = {n: p.detach() for n, p in model.named_parameters()}
    plan = MemoryPlan(max_memory=budget, least=False, given=True,
                      param_bytes=sum(p.numel() * p.element_size() for p in params.values()))
    return GradientGraphs(model, loss_fn, params, list(params), plan, torch.device("cpu"),
                          keeping=keeping), plan


def _check(store: GradientGraphs, data) -> list[torch.Tensor]:
    """The data check's evaluations (prepare_data's order): batch 0 twice, then the others."""
    losses = [store.check_loss(0, *data[0], 0), store.check_loss(0, *data[0], 1)]
    losses += [store.check_loss(i, x, y, 0) for i, (x, y) in enumerate(data) if i > 0]
    return losses


def test_the_data_check_measures_batch_0_and_keeps_every_graph_that_fits(mlp_problem):
    model, loss_fn, data = mlp_problem[:3]
    store, plan = _store(model, loss_fn, 2**30)
    plan.samples = tuple(len(y) for _, y in data)
    losses = _check(store, data)
    for (x, y), loss in zip([data[0], *data], losses, strict=True):
        assert torch.equal(loss, loss_fn(model(x), y).detach())
    params = dict(model.named_parameters())
    x, y = data[0]
    fresh = gradient_graph(model, dict(model.named_buffers()), loss_fn,
                           {n: p.detach() for n, p in params.items()}, list(params), x, y)
    saved = saved_by_graph(fresh[1].values(), exclude=[p.detach() for p in params.values()])
    assert plan.graph_bytes == saved.bytes > 0 and plan.first_samples == len(y)
    assert store.saved_dtypes == tuple(saved.float_dtypes) and torch.float64 in store.saved_dtypes
    assert store.custom_functions == ()
    assert sorted(store.kept) == list(range(len(data)))
    assert store.kept_bytes == sum(plan.estimated_bytes(len(y)) for _, y in data)
    for name, g in store.kept[0][1].items():  # the kept graph's gradient is batch 0's
        assert torch.equal(g, fresh[1][name])
    # the graphs the products run on count as builds; batch 0's measured build among them
    assert store.seconds >= store.first_build_seconds > 0
    store.drop()
    assert store.kept == {} and store.kept_bytes == 0


def test_a_graph_over_the_budget_keeps_none_and_checks_by_forward_calls(mlp_problem):
    """A budget that fits batch 0's graph (with a tangent's room) but not batch 1's beside it:
    batch 1's check drops batch 0's graph and stops keeping; batch 2 is a plain forward."""
    model, loss_fn, data = mlp_problem[:3]
    probe, plan = _store(model, loss_fn, 2**30)
    probe.measure_first(*data[0])
    budget = plan.estimated_bytes(len(data[0][1])) + plan.graph_bound()
    store, tight = _store(model, loss_fn, budget)
    tight.samples = tuple(len(y) for _, y in data)
    builds = []
    build = store.build
    store.build = lambda *a, **k: builds.append(1) or build(*a, **k)
    losses = _check(store, data)
    assert len(builds) == 1  # batch 0's measuring build only
    assert store.kept == {} and store.kept_bytes == 0 and not store.keeping
    for (x, y), loss in zip([data[0], *data], losses, strict=True):
        assert torch.equal(loss.detach(), loss_fn(model(x), y).detach())


def test_a_forward_operators_store_keeps_no_graph(mlp_problem):
    model, loss_fn, data = mlp_problem[:3]
    store, plan = _store(model, loss_fn, 2**30, keeping=False)
    _check(store, data)
    assert store.kept == {} and plan.graph_bytes > 0  # measured all the same


def test_new_builds_with_respect_to_the_names_given(mlp_problem):
    model, loss_fn, data = mlp_problem[:3]
    store, _ = _store(model, loss_fn, 2**30)
    store.measure_first(*data[0])
    (leaves, grads), loss = store.new(1, *data[1], keep=False, samples=len(data[1][1]),
                                      names=["2.weight"])
    assert list(leaves) == list(grads) == ["2.weight"] and 1 not in store.kept
    assert torch.equal(loss.detach(), loss_fn(model(data[1][0]), data[1][1]).detach())


def test_kept_or_built_gives_the_kept_graph_or_one_it_neither_keeps_nor_times(mlp_problem):
    model, loss_fn, data = mlp_problem[:3]
    store, plan = _store(model, loss_fn, 2**30)
    leaves, grads = store.kept_or_built(1, *data[1])  # nothing kept yet: built for the caller
    assert store.kept == {} and store.seconds == 0.0
    x, y = data[1]
    fresh = gradient_graph(model, {}, loss_fn, store._params, list(store._params), x, y)[1]
    assert list(leaves) == list(grads) == list(fresh)
    for name, g in grads.items():
        assert g.requires_grad and torch.equal(g, fresh[name])
    plan.samples = tuple(len(y) for _, y in data)
    _check(store, data)
    seconds = store.seconds
    assert store.kept_or_built(1, *data[1]) is store.kept[1] and store.seconds == seconds


def test_gradient_at_other_values_is_the_models_gradient_there(mlp_problem):
    """``gradient`` replaces the values given and keeps the others: it equals autograd's
    gradient of a copy of the model holding those values, and with none replaced the
    gradient a build holds."""
    model, loss_fn, data = mlp_problem[:3]
    store, _ = _store(model, loss_fn, 2**30)
    x, y = data[0]
    shifted = {"0.bias": store._params["0.bias"] + 0.25}
    loss, grads = store.gradient(x, y, shifted)
    copy = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(),
                               torch.nn.Linear(6, 3)).double()
    copy.load_state_dict({**model.state_dict(), **shifted})
    reference = loss_fn(copy(x), y)
    expected = torch.autograd.grad(reference, list(copy.parameters()))
    assert not loss.requires_grad and torch.allclose(loss, reference.detach(), rtol=1e-14)
    assert list(grads) == [n for n, _ in copy.named_parameters()]
    for g, e in zip(grads.values(), expected, strict=True):
        assert not g.requires_grad
        assert torch.allclose(g, e, rtol=1e-12, atol=1e-14 * float(e.abs().max()))
    unshifted = store.gradient(x, y, {})[1]
    built = store.build(x, y)[1]
    assert not torch.allclose(unshifted["0.bias"], grads["0.bias"])  # the shift is seen
    for name, g in unshifted.items():
        assert torch.allclose(g, built[name], rtol=1e-12, atol=1e-14 * float(g.abs().max()))


def test_tangent_bytes_grow_with_the_batch(mlp_problem):
    """The double backward's transients hold activations' worth of tensors: on a batch twice
    as large, one tangent holds more; a zero-padded row holds at least its tangent and its
    full-space product (two parameter copies)."""
    model, loss_fn, _, (x, y) = mlp_problem
    blocks = resolve_blocks(model, None)
    params = {n: p.detach() for n, p in model.named_parameters()}
    param_bytes = sum(p.numel() * p.element_size() for p in params.values())
    measured = []
    for n in (8, 16):
        leaves, grads, _ = gradient_graph(model, {}, loss_fn, params, list(params), x[:n],
                                          y[:n])
        graph = (leaves, grads)
        measured.append(block_tangent_bytes(graph, blocks, torch.float64,
                                            torch.device("cpu"), DoubleBackward()))
        assert padded_row_bytes(graph, params, torch.float64, torch.device("cpu"),
                                DoubleBackward()) >= 2 * param_bytes
    assert 1 <= measured[0] < measured[1]
