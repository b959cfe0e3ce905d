"""The size of a kept gradient graph: read off the graph (``saved_by_graph``) against the bytes
its build saved (``SavedBytes``), and the operator's fallback between the two."""

from __future__ import annotations

import pytest
import torch

import nets
from nets import zoo
from nets.engine.blocks import resolve_blocks
from nets.engine.graphs import GradientGraphs
from nets.engine.hvp import BlockHVP
from nets.engine.memory import LiveBytes, SavedBytes, saved_by_graph
from nets.engine.products import gradient_graph

from .conftest import OldStyleSquare, on_device


def _both(model, loss_fn, batch) -> tuple[int | None, int]:
    """``(saved_by_graph's bytes, SavedBytes)`` of one batch's gradient graph w.r.t. every
    parameter."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    x, y = batch
    with SavedBytes(exclude=params.values()) as saved:
        _, grads, _ = gradient_graph(model, buffers, loss_fn, params, list(params), x, y)
    walked = saved_by_graph(grads.values(), exclude=params.values())
    return (None if walked is None else walked.bytes), saved.bytes


class _LayerNormNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.lin = torch.nn.Linear(6, 8).double()
        self.norm = torch.nn.LayerNorm(8).double()
        self.out = torch.nn.Linear(8, 3).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))

    def forward(self, x):
        return self.out(torch.tanh(self.norm(self.lin(x))))


def _layernorm_problem():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(9, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (9,), generator=g)
    return _LayerNormNet(), torch.nn.functional.cross_entropy, [(x, y)]


def _zoo_gpt():
    model, loss_fn, data = zoo.load("gpt", seed=0)
    return model, loss_fn, data[:1]


@pytest.mark.parametrize("case", ["mlp", "attention", "layernorm", "zoo-gpt"])
def test_walk_matches_the_bytes_the_build_saved(case, mlp_problem, attention_problem):
    """The walk counts what the build's pack hooks counted, up to a few 0-dim scalars (a
    node's saved Python number reads as a fresh 0-dim tensor; a loss-side scalar that the
    gradient does not keep is not reached): within 64 bytes on every model."""
    model, loss_fn, data = {"mlp": mlp_problem[:3], "attention": attention_problem[:3],
                            "layernorm": _layernorm_problem(), "zoo-gpt": _zoo_gpt()}[case]
    walked, hooked = _both(model, loss_fn, data[0])
    assert walked is not None and hooked > 1000
    assert abs(walked - hooked) <= 64, (walked, hooked)


def test_walk_on_a_hugging_face_model():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=2, n_head=2,
                                  bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)  # transformers initializes from the global generator
    model = transformers.GPT2LMHeadModel(cfg).double().eval()
    ids = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))

    def loss_fn(out, labels):
        return torch.nn.functional.cross_entropy(out.logits.reshape(-1, 11), labels.reshape(-1))

    with torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.MATH]):
        walked, hooked = _both(model, loss_fn, ({"input_ids": ids}, ids))
    assert walked is not None and abs(walked - hooked) <= 64, (walked, hooked)


def test_walk_counts_shared_storages_once_and_skips_excluded():
    """``x * x`` saves ``x`` twice, two views of ``x`` share its storage: ``x``'s bytes once;
    nothing when ``x`` is excluded."""
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    assert saved_by_graph([(x * x).sum()]).bytes == 8000
    assert saved_by_graph([(x[:500] * x[500:]).sum()]).bytes == 8000
    assert saved_by_graph([(x * x).sum()], exclude=[x]).bytes == 0
    assert saved_by_graph([x, None, torch.ones(3)]).bytes == 0  # no grad_fn: no graph


def test_walk_and_hooks_see_the_dtypes_a_model_computes_in():
    """A float64 computation with a float32 step saves float32 tensors: both the walk and the
    hooks report the dtypes; an excluded tensor's dtype still counts (it is not memory the
    graph adds, but the precision it computes in)."""
    w = torch.randn(50, dtype=torch.float64, requires_grad=True)
    with SavedBytes() as saved:
        out = (torch.tanh((w * w).float()).double() * w).sum()
        (g,) = torch.autograd.grad(out, w, create_graph=True)
    walked = saved_by_graph([g], exclude=[w])
    assert walked.float_dtypes == {torch.float64, torch.float32}
    assert saved.float_dtypes == {torch.float64, torch.float32}
    plain = saved_by_graph([(w * w).sum()], exclude=[w])
    assert plain.float_dtypes == {torch.float64} and plain.bytes == 0
    assert saved_by_graph([w]) == saved_by_graph([]) and saved_by_graph([]).bytes == 0


def test_walk_reads_custom_functions_saved_tensors():
    """A custom ``autograd.Function``'s node keeps what it saved with ``save_for_backward``,
    which the walk reads from its ``saved_tensors``."""
    w = torch.randn(200, dtype=torch.float64, requires_grad=True)
    big = torch.randn(200, dtype=torch.float64) * 3
    with SavedBytes(exclude=[w]) as saved:
        x = w * big  # saved by the square's node alone (``w * big`` saves ``w`` and ``big``)
        out = (OldStyleSquare.apply(x) * w).sum()  # ∇ = x² + …: the square's node is kept
        (g,) = torch.autograd.grad(out, w, create_graph=True)
    nodes, stack = set(), [g.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in nodes:
            nodes.add(node)
            stack.extend(n for n, _ in node.next_functions)
    assert any(isinstance(n, torch.autograd.function.BackwardCFunction) for n in nodes)
    walked = saved_by_graph([g], exclude=[w])
    assert walked is not None
    assert walked.bytes - saved_by_graph([g], exclude=[w, x]).bytes == \
        x.untyped_storage().nbytes()
    # what only the forward's first backward needed (not reachable from g) is not kept
    assert walked.bytes <= saved.bytes


def test_walk_of_a_freed_graph_is_unreadable():
    """Saved tensors freed by a backward without ``retain_graph``: ``None`` (measure by hooks)."""
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = (torch.sin(w) * w).sum()
    torch.autograd.grad(y, w)  # frees the graph's saved tensors
    assert saved_by_graph([y]) is None


def test_operator_measures_by_hooks_where_the_walk_cannot_read(mlp_problem, monkeypatch):
    """An operator whose graph the walk cannot read measures it on a second build under
    SavedBytes (not kept), and computes the same products."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    vecs = [torch.randn(2, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    walked = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    monkeypatch.setattr("nets.engine.graphs.saved_by_graph", lambda *a, **k: None)
    builds = []
    build = GradientGraphs.build

    def counted(self, x, y, names=None):
        builds.append(1)
        return build(self, x, y, names)

    monkeypatch.setattr(GradientGraphs, "build", counted)
    hooked = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    assert len(builds) == len(data) + 1  # the unreadable build, the hooks' build, the others
    assert abs(hooked.graph_bytes - walked.graph_bytes) <= 64
    assert hooked.compute_dtype == walked.compute_dtype == torch.float64
    assert hooked.info()["graphs_kept"] == len(data) - 1  # batch 0 is rebuilt by its call
    for a, b in zip(walked(vecs), hooked(vecs), strict=True):
        assert torch.equal(a, b)
    assert hooked.info()["graphs_kept"] == len(data)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_nets_call_leaves_the_callers_cuda_peak(mlp_problem):
    """nets never resets CUDA's peak counter: a peak the caller set before a call is still
    there after it, and the call's reported peak (the same counter) covers it."""
    dev = torch.device("cuda")
    model, loss_fn, data, _ = mlp_problem
    model, data = on_device(model, data, dev)  # copies: the session's fixture stays on the CPU
    torch.cuda.reset_peak_memory_stats(dev)
    big = torch.empty(256 * 2**20, dtype=torch.uint8, device=dev)
    del big
    before = torch.cuda.max_memory_allocated(dev)
    assert before >= 256 * 2**20
    info: dict = {}
    nets.full_spectrum(model, loss_fn, data, lanczos_steps=3, info=info)
    assert torch.cuda.max_memory_allocated(dev) >= before
    assert info["peak_memory_kind"] == "cuda_max_allocated"
    assert info["peak_memory_bytes"] >= before


def test_live_bytes_counts_known_allocations():
    """A tensor counts its bytes once, a view adds nothing, a storage made before the count is
    never counted, a freed tensor leaves ``live`` and stays in ``peak``."""
    before = torch.zeros(1000)
    with LiveBytes() as count:
        a = torch.zeros(1000)                     # 4000 bytes
        view = a.view(10, 100)                    # the same storage: nothing more
        b = torch.ones(500, dtype=torch.float64)  # 4000 bytes
        alias, part = before.detach(), before[:10]  # made before the count: not counted
        assert (count.live, count.peak) == (8000, 8000)
        del b
        assert (count.live, count.peak) == (4000, 8000)
        c = a * 2                                 # a new result: counted
        assert (count.live, count.peak) == (8000, 8000)
        del c
        d = torch.zeros(3000)                     # the peak follows the most alive at once
        assert (count.live, count.peak) == (16000, 16000)
    assert view.shape == (10, 100) and alias.shape == (1000,) and part.shape == (10,)
    assert d.numel() == 3000


def test_live_bytes_sees_an_autograd_graph_and_its_release():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=g, requires_grad=True)
    x = torch.randn(8, 64, generator=g)
    with LiveBytes() as count:
        (g,) = torch.autograd.grad(torch.tanh(x @ w).pow(2).sum(), w, create_graph=True)
        held = count.live
        assert held >= g.numel() * g.element_size()   # at least the gradient itself
        del g
        assert count.live < held                       # the graph went with it
