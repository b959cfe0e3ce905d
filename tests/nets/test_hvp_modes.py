"""Every Hessian-vector product mode against an independent dense Hessian.

The reference is ``torch.autograd.functional.hessian`` of the mean loss as a function of the
flattened parameters (no code shared with :class:`nets.engine.hvp.BlockHVP`). Models: an MLP,
math attention, and a model with LayerNorm and fused ``F.scaled_dot_product_attention`` (whose
CPU flash kernel has neither forward AD nor double backward).
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

import nets
import nets.cli.app as cli
from nets.engine import graphs as graphs_module
from nets.engine import hvp as hvp_module
from nets.engine import modes as modes_module
from nets.engine import tangents as tangents_module
from nets.engine.blocks import resolve_blocks
from nets.engine.budget import LEAST
from nets.engine.graphs import GradientGraphs
from nets.engine.hvp import BlockHVP
from nets.engine.memory import LiveBytes
from nets.engine.modes import (
    FORWARD_MIN_TANGENTS,
    FORWARD_MIN_TANGENTS_CPU,
    MODES,
    forward_min_tangents,
)
from nets.engine.results import load_metadata, load_spectra
from nets.engine.spectrum import operator_spectra

from .conftest import OldStyleSquare, mse_problem, on_device

PRODUCT_MODES = [m for m in MODES if m != "auto"]


class LayerNormSdpa(torch.nn.Module):
    """Embedding → LayerNorm → causal two-head SDPA attention → linear readout."""

    def __init__(self, vocab: int = 5, dim: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.ln = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.out = torch.nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln(self.emb(x))
        b, t, d = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, 2, d // 2).permute(2, 0, 3, 1, 4)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(a.transpose(1, 2).reshape(b, t, d).mean(1) + h.mean(1))


@pytest.fixture(scope="module")
def sdpa_problem():
    g = torch.Generator().manual_seed(5)
    torch_state = torch.random.get_rng_state()
    model = LayerNormSdpa().double()
    torch.random.set_rng_state(torch_state)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / 2)
    x = torch.randint(0, 5, (9, 4), generator=g)
    y = torch.randint(0, 3, (9,), generator=g)
    return model, torch.nn.functional.cross_entropy, [(x[:5], y[:5]), (x[5:], y[5:])]


_DENSE: dict[str, tuple[np.ndarray, list[str], list[int]]] = {}


def _dense_reference(model, loss_fn, data) -> tuple[np.ndarray, list[str], list[int]]:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])
    total = sum(len(y) for _, y in data)

    def loss(w):
        params = dict(zip(names, [c.reshape(s) for c, s in
                                  zip(torch.split(w, sizes), shapes, strict=True)], strict=True))
        return sum(loss_fn(functional_call(model, params, (x,)), y) * (len(y) / total)
                   for x, y in data)

    with sdpa_kernel([SDPBackend.MATH]):
        h = torch.autograd.functional.hessian(loss, flat)
    return h.numpy(), names, sizes


def _assert_dense_products(products, blocks, vecs, problem, atol: float) -> None:
    """Each block's products equal its vectors times the dense Hessian's diagonal block of
    ``problem`` (model, loss, data), to ``atol`` times the Hessian's largest entry."""
    h, names, sizes = _dense_reference(*problem)
    offsets = np.cumsum([0, *sizes])
    for b, v, out in zip(blocks, vecs, products, strict=True):
        i = names.index(b.name)
        ref = v.numpy() @ h[offsets[i]:offsets[i + 1], offsets[i]:offsets[i + 1]]
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=atol * np.abs(h).max(),
                                   err_msg=b.name)


def _with_dense(request, problem: str):
    """The fixture ``problem``'s model, loss and data, with its dense Hessian (computed once per
    problem), the parameters' names and their offsets in it."""
    model, loss_fn, data = request.getfixturevalue(problem)[:3]
    if problem not in _DENSE:
        _DENSE[problem] = _dense_reference(model, loss_fn, data)
    h, names, sizes = _DENSE[problem]
    return model, loss_fn, data, h, names, np.cumsum([0, *sizes])


@pytest.mark.parametrize("problem", ["mlp_problem", "attention_problem", "sdpa_problem"])
@pytest.mark.parametrize("mode", [*PRODUCT_MODES, "auto"])
def test_every_mode_matches_dense_hessian_blocks(problem, mode, device, request, monkeypatch):
    # auto times every mode here: forward-over-reverse too, however few the tangents, and
    # reverse-bundle with several blocks per bundle, however many rows (an identity per block)
    monkeypatch.setattr(modes_module, "FORWARD_MIN_TANGENTS_CPU", 1)
    monkeypatch.setattr(modes_module, "FORWARD_MIN_TANGENTS", 1)
    monkeypatch.setattr(modes_module, "BUNDLE_ROWS", 10**4)
    monkeypatch.setattr(modes_module, "BUNDLE_ON_CPU", True)
    model, loss_fn, data, h, names, offsets = _with_dense(request, problem)
    model, data = on_device(model, data, device)  # the reference stays the CPU's
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, loss_fn, data, blocks, mode=mode)
    eyes = [torch.eye(b.dim, dtype=torch.float64, device=device) for b in blocks]
    for _ in range(2):  # the second call reuses kept graphs
        out = op(eyes)
        for b, o in zip(blocks, out, strict=True):
            assert o.device.type == device.type
            i = names.index(b.name)
            ref = h[offsets[i]:offsets[i + 1], offsets[i]:offsets[i + 1]]
            scale = np.abs(h).max()
            np.testing.assert_allclose(o.cpu().numpy(), ref, rtol=0, atol=1e-11 * scale,
                                       err_msg=f"{mode} {b.name} on {device}")
    info = op.info()
    assert info["hvp_mode"] in PRODUCT_MODES
    assert info["products"] == 2 * sum(b.dim for b in blocks)
    if info["hvp_mode"] == "reverse-bundle":
        assert info["bundle_size"] >= 2
    if mode == "auto":
        assert set(info["calibration"]["seconds"]) == set(PRODUCT_MODES)
        assert info["hvp_mode"] == min(info["calibration"]["seconds"],
                                       key=info["calibration"]["seconds"].get)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("chunk_size", [1, 3, 7])
def test_zero_padded_modes_pad_one_chunk_at_a_time(mode, chunk_size, request, monkeypatch):
    """The zero-padded modes embed the stacked rows of every block in the whole parameter
    space ``chunk_size`` rows at a time (the budget sizes the chunks; padding every row at once
    held every block's padded tangents and products beside them,
    ``benchmarks/results/estimates.md``), and chunking leaves the products the dense
    Hessian's blocks (LayerNorm and fused attention, chunks that cut through blocks)."""
    model, loss_fn, data, h, names, offsets = _with_dense(request, "sdpa_problem")
    blocks = resolve_blocks(model, None)
    padded_rows = []
    original = hvp_module.pad_tangents

    def recording(blocks_, vectors, params, dtype):
        out = original(blocks_, vectors, params, dtype)
        padded_rows.append(next(iter(out.values())).shape[0])
        return out

    monkeypatch.setattr(hvp_module, "pad_tangents", recording)
    op = BlockHVP(model, loss_fn, data, blocks, mode=mode, chunk_size=chunk_size)
    eyes = [torch.eye(b.dim, dtype=torch.float64) for b in blocks]
    out = op(eyes)
    rows = sum(b.dim for b in blocks)
    assert max(padded_rows) == min(chunk_size, rows)
    assert sum(padded_rows) == rows * len(data)  # every row padded once per batch
    scale = np.abs(h).max()
    for b, o in zip(blocks, out, strict=True):
        i = names.index(b.name)
        ref = h[offsets[i]:offsets[i + 1], offsets[i]:offsets[i + 1]]
        np.testing.assert_allclose(o.numpy(), ref, rtol=0, atol=1e-11 * scale,
                                   err_msg=f"{mode} {b.name}, chunks of {chunk_size}")


def test_forward_threshold_depends_on_the_device():
    """On a CPU forward-over-reverse is tried from FORWARD_MIN_TANGENTS_CPU tangents
    (benchmarks/results/modes.md), on an accelerator from FORWARD_MIN_TANGENTS."""
    assert forward_min_tangents(torch.device("cpu")) == FORWARD_MIN_TANGENTS_CPU
    assert forward_min_tangents(torch.device("cuda")) == FORWARD_MIN_TANGENTS
    assert FORWARD_MIN_TANGENTS_CPU > FORWARD_MIN_TANGENTS


class FakeClock:
    """A ``time`` module whose ``perf_counter`` moves only when :meth:`advance` is called: the
    operator's timers then read exactly the time a test charges, whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_auto_skips_forward_below_the_cpu_threshold_and_times_it_warm(mlp_problem,
                                                                      monkeypatch):
    """Below the CPU threshold auto does not evaluate forward-over-reverse (the reason names
    the count and the device); at it, forward-over-reverse runs twice on the first batch and
    only its second run is timed (a slow first call, one-time costs, does not count)."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    total = sum(b.dim for b in blocks)
    eyes = [torch.eye(b.dim, dtype=torch.float64) for b in blocks]
    calls = []
    real = BlockHVP._products
    clock = FakeClock()  # only the first forward call's cost moves it
    monkeypatch.setattr(hvp_module, "time", clock)

    def products(self, mode, *args, **kwargs):
        if self.mode is None:  # calibrating
            calls.append(mode)
        if mode == "forward" and calls.count("forward") == 1:
            clock.advance(0.5)  # a first call's one-time cost
        return real(self, mode, *args, **kwargs)

    monkeypatch.setattr(BlockHVP, "_products", products)
    monkeypatch.setattr(modes_module, "FORWARD_MIN_TANGENTS_CPU", total + 1)
    op = BlockHVP(model, loss_fn, data, blocks)
    op(eyes)
    cal = op.info()["calibration"]
    assert "forward" not in calls
    assert cal["skipped"]["forward"] == f"{total} < {total + 1} tangents on cpu"
    calls.clear()
    monkeypatch.setattr(modes_module, "FORWARD_MIN_TANGENTS_CPU", total)
    op = BlockHVP(model, loss_fn, data, blocks)
    op(eyes)
    cal = op.info()["calibration"]
    assert calls.count("forward") == 2  # warm-up, then timed
    assert "forward" in cal["seconds"] and cal["seconds"]["forward"] == 0.0


def test_auto_skips_the_zero_padded_modes_with_one_tangent_per_product(mlp_problem,
                                                                        monkeypatch):
    """With one tangent per product (``chunk_size=1``, as under ``max_memory="least"``) auto
    tries neither the zero-padded double backward (one row at a time it does the
    block-restricted product's work and more) nor forward-over-reverse (the threshold counts
    tangents per ``vmap``, not per call), and names why; the products are reverse-block's."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    assert len(blocks) < modes_module.ZERO_PADDED_MAX_BLOCKS  # the zero-padded modes qualify
    vecs = [torch.randn(3, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    monkeypatch.setattr(modes_module, "FORWARD_MIN_TANGENTS_CPU", 2)  # each call has 12
    roomy = BlockHVP(model, loss_fn, data, blocks)
    roomy(vecs)
    assert set(roomy.info()["calibration"]["seconds"]) == {"reverse-block", "reverse", "forward"}
    for one in (BlockHVP(model, loss_fn, data, blocks, chunk_size=1),
                BlockHVP(model, loss_fn, data, blocks, max_memory=LEAST)):
        out = one(vecs)
        cal = one.info()["calibration"]
        assert one.chunk_size == 1 and one.mode == "reverse-block"
        assert set(cal["seconds"]) == {"reverse-block"}
        assert cal["skipped"]["reverse"].startswith("one tangent per product (chunk_size 1)")
        assert cal["skipped"]["reverse-bundle"] == ("one block per bundle: the same product "
                                                    "as reverse-block")
        assert cal["skipped"]["forward"] == "1 tangents per product (chunk_size 1) < 2 on cpu"
        assert one.info()["calibration_seconds"] == 0
        ref = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")(vecs)
        for a, b in zip(out, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_full_spectrum_same_in_every_mode(sdpa_problem, device):
    model, loss_fn, data = sdpa_problem
    model, data = on_device(model, data, device)
    runs = {m: nets.full_spectrum(model, loss_fn, data, lanczos_steps=12, probes=2, mode=m)
            for m in PRODUCT_MODES}
    ref = runs["forward"]
    for m, s in runs.items():
        scale = np.abs(ref.nodes).max()
        np.testing.assert_allclose(s.nodes, ref.nodes, rtol=0, atol=1e-9 * scale, err_msg=m)


@pytest.mark.filterwarnings("ignore:max_memory=1 bytes is below the least:UserWarning")
def test_memory_budget_bounds_graphs_and_chunks(mlp_problem):
    """A budget too small for one graph: nothing kept, one tangent at a time, same products."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    vecs = [torch.randn(3, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    roomy = BlockHVP(model, loss_fn, data, blocks, mode="reverse")
    tight = BlockHVP(model, loss_fn, data, blocks, mode="reverse", max_memory=1)
    a, b = roomy(vecs), tight(vecs)
    assert roomy.info()["graphs_kept"] == len(data) and roomy.chunk_size >= 12
    assert tight.info()["graphs_kept"] == 0 and tight.chunk_size == 1
    assert tight.info()["graph_bytes"] > 0
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=0)


def test_info_reports_mode_memory_and_counts(attention_problem):
    model, loss_fn, data = attention_problem[:3]
    info: dict = {}
    spectra = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=4, probes=1,
                                      blocks={"qk": ["q", "k"], "rest": ["emb", "v", "out"]},
                                      info=info)
    assert info["hvp_mode"] in ("reverse", "reverse-block") and info["requested_mode"] == "auto"
    # 2 tangents: forward not worth trying; no bundles on a CPU
    assert set(info["calibration"]["skipped"]) == {"forward", "reverse-bundle"}
    assert info["peak_memory_bytes"] > 0 and info["peak_memory_kind"] == "process_peak_rss"
    assert info["products"] == 4 * 1 * len(spectra)
    assert info["seconds"] > 0
    # the other double-backward mode was tried on the first batch: its time is what the
    # calibration added, apart from the products of the mode in use
    other = ({"reverse", "reverse-block"} - {info["hvp_mode"]}).pop()
    assert other in info["calibration"]["seconds"]
    assert 0 < info["calibration_seconds"] < info["seconds"]
    forced: dict = {}
    nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=4, probes=1, mode="reverse",
                            blocks={"qk": ["q", "k"], "rest": ["emb", "v", "out"]}, info=forced)
    assert forced["calibration"] == {} and forced["calibration_seconds"] == 0


@pytest.mark.filterwarnings("ignore:max_memory=1 bytes is below the least:UserWarning")
@pytest.mark.parametrize("budget", [None, 1], ids=["keep-all", "one-at-a-time"])
def test_info_splits_product_time_from_graph_builds(mlp_problem, monkeypatch, budget):
    """``product_seconds`` is the products' time alone and ``graph_seconds`` the builds': on a
    clock that only a build (``pause``) and a product (``2 pause``) move, each timer reads
    exactly its own charges, once per batch and call (a build timed as a product, or the
    reverse, would show as a whole ``pause`` too many or too few)."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    pause = 0.05
    vecs = [torch.randn(2, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    clock = FakeClock()
    monkeypatch.setattr(hvp_module, "time", clock)  # the products' timer
    monkeypatch.setattr(graphs_module, "time", clock)  # the builds'
    build, products = GradientGraphs.build, BlockHVP._reverse_block

    def slow_build(self, x, y, names=None):
        clock.advance(pause)
        return build(self, x, y, names)

    def slow_products(self, graph, vectors):
        clock.advance(2 * pause)
        return products(self, graph, vectors)

    monkeypatch.setattr(GradientGraphs, "build", slow_build)
    monkeypatch.setattr(BlockHVP, "_reverse_block", slow_products)
    # under keep-all the graphs are built (and kept) by the data check
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=budget)
    calls, batches = 3, len(data)
    for _ in range(calls):
        op(vecs)
    info = op.info()
    # kept (built once, by the data check), or rebuilt every call; the measuring build is not
    # a product's graph
    builds = batches if budget is None else calls * batches
    assert info["graph_strategy"] == ("keep-all" if budget is None else "one-at-a-time")
    assert info["graph_seconds"] == pytest.approx(builds * pause, rel=1e-9)
    assert info["product_seconds"] == pytest.approx(calls * batches * 2 * pause, rel=1e-9)


def test_progress_bar_in_library(attention_problem, capsys):
    model, loss_fn, data = attention_problem[:3]
    nets.full_spectrum(model, loss_fn, data, lanczos_steps=3, probes=1, progress=True)
    err = capsys.readouterr().err
    assert "Lanczos" in err and "3/3" in err


class _WrongJvpSquare(torch.autograd.Function):
    """``x²`` whose forward-mode derivative is deliberately wrong (``3x`` instead of ``2x``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        (ctx.x,) = inputs
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g

    @staticmethod
    def jvp(ctx, t):
        return 3 * ctx.x * t


class _WrongJvpModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (_WrongJvpSquare.apply(self.w) ** 2).sum() * x.mean()


def test_modes_disagreeing_are_reported():
    """A model whose forward-mode and reverse-mode derivatives differ is refused, not averaged."""
    model = _WrongJvpModel()
    data = [(torch.ones(2, dtype=torch.float64), torch.zeros(2))]
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, lambda out, y: out, data, blocks)
    reps = -(-FORWARD_MIN_TANGENTS_CPU // 3)  # enough tangents that forward is tried
    vecs = [torch.eye(3, dtype=torch.float64).repeat(reps, 1)]
    with pytest.raises(ValueError, match="disagree between modes"):
        op(vecs)


class _OldStyleModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (OldStyleSquare.apply(self.w * x.mean()) ** 2).sum()


def test_a_forced_mode_the_model_cannot_run_names_the_fix_and_auto_skips_it():
    model = _OldStyleModel()
    data = [(torch.ones(2, dtype=torch.float64), torch.zeros(2))]
    blocks = resolve_blocks(model, None)
    vecs = [torch.eye(3, dtype=torch.float64)]
    with pytest.raises(RuntimeError, match=r"mode='forward' failed on this model: RuntimeError: "
                                           r"In order to use an autograd.Function.*mode='auto'"):
        BlockHVP(model, lambda out, y: out, data, blocks, mode="forward")(vecs)
    want = np.diag(12 * model.w.detach().numpy() ** 2)  # d²/dw² Σ w⁴ (x̄ = 1)
    for mode in ("reverse-block", "auto"):
        op = BlockHVP(model, lambda out, y: out, data, blocks, mode=mode)
        np.testing.assert_allclose(op(vecs)[0].numpy(), want, rtol=1e-14)
    op = BlockHVP(model, lambda out, y: out, data, blocks, mode="auto")
    op([torch.eye(3, dtype=torch.float64).repeat(-(-FORWARD_MIN_TANGENTS_CPU // 3), 1)])
    assert "setup_context" in op.info()["calibration"]["failed"]["forward"]


@pytest.mark.slow
@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="no torch.compile here")
def test_compile_on_a_model_torch_func_refuses_names_compile_false():
    """compile=True forces forward-over-reverse: its failure names the fix (compile=False, so
    that auto can skip the mode)."""
    model = _OldStyleModel()
    data = [(torch.ones(2, dtype=torch.float64), torch.zeros(2))]
    op = BlockHVP(model, lambda out, y: out, data, resolve_blocks(model, None), compile=True)
    with pytest.raises(RuntimeError, match=r"(?s)mode='forward' failed.*compile=False lets "
                                           r"mode='auto' try every mode"):
        op([torch.eye(3, dtype=torch.float64)])


@pytest.mark.parametrize("kw, err, match", [
    ({"mode": "fast"}, ValueError, "mode must be one of"),
    ({"max_memory": 0}, ValueError, "max_memory must be a positive integer"),
    ({"chunk_size": 1.5}, TypeError, "chunk_size must be a positive integer"),
    ({"info": []}, TypeError, "info must be a dict"),
])
def test_bad_options(mlp_problem, kw, err, match):
    model, loss_fn, data = mlp_problem[:3]
    with pytest.raises(err, match=match):
        nets.full_spectrum(model, loss_fn, data, lanczos_steps=2, probes=1, **kw)


def test_cli_hvp_mode_memory_budget_and_peak_memory_in_json_and_file(tmp_path, capsys):
    """``--hvp-mode``/``--max-memory`` reach the engine; the run's info is in --json and file."""
    out = tmp_path / "r.json"
    argv = ["spectrum", "--model", "mlp", "--steps", "3", "--probes", "1", "--quiet",
            "--device", "cpu", "--hvp-mode", "reverse-block", "--max-memory", "1M", "--json",
            "--blocks", "--out", str(out)]
    assert cli.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    engine = doc["engine"]
    assert engine["hvp_mode"] == engine["requested_mode"] == "reverse-block"
    assert engine["max_memory"] == 1024 ** 2 and engine["peak_memory_bytes"] > 0
    with open(out) as f:
        stored = json.load(f)["metadata"]
    assert stored["hvp_mode"] == "reverse-block" and stored["peak_memory_bytes"] > 0
    assert load_spectra(out).settings == doc["settings"]  # the metadata is not part of the settings
    with pytest.raises(SystemExit):
        cli.main([*argv[:-2], "--hvp-mode", "fast"])


def test_cli_builds_one_operator_per_run_and_pins_the_mode(tmp_path, monkeypatch):
    """One operator per run (data checked, graphs kept, calibrated once) for all its probes;
    a resumed run builds its operator with the stored probes' mode."""
    built: list[str] = []
    calls: list[int] = []

    class Counting(BlockHVP):
        def __init__(self, *a, **k):
            built.append(k["mode"])
            super().__init__(*a, **k)

    real = cli.operator_spectra

    def interrupted(op, **k):
        calls.append(id(op))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(op, **k)

    monkeypatch.setattr(cli, "BlockHVP", Counting)
    monkeypatch.setattr(cli, "operator_spectra", interrupted)
    out = tmp_path / "r.json"
    argv = ["spectrum", "--model", "mlp", "--steps", "3", "--probes", "4", "--quiet",
            "--device", "cpu", "--blocks", "--out", str(out)]
    assert cli.main(argv) == 130
    chosen = load_metadata(out)["hvp_mode"]
    assert chosen in PRODUCT_MODES and built == ["auto"] and len(set(calls)) == 1
    built.clear()
    calls.clear()
    monkeypatch.setattr(cli, "operator_spectra", real)
    assert cli.main(argv) == 0
    assert built == [chosen]
    assert load_metadata(out)["hvp_mode"] == chosen


def test_cli_compile_refuses_a_double_backward_mode(capsys):
    assert cli.main(["spectrum", "--model", "mlp", "--steps", "2", "--probes", "1", "--quiet",
                     "--compile", "--hvp-mode", "reverse"]) == 2
    assert "--compile compiles the forward-over-reverse product only" in capsys.readouterr().err


def test_compile_option_checks():
    model = torch.nn.Linear(2, 1)
    data = [(torch.ones(3, 2), torch.zeros(3, 1))]
    loss = torch.nn.functional.mse_loss
    blocks = resolve_blocks(model, None)
    with pytest.raises(ValueError, match="compiles the forward-over-reverse product only"):
        BlockHVP(model, loss, data, blocks, mode="reverse", compile=True)
    with pytest.raises(TypeError, match="compile must be True or False"):
        BlockHVP(model, loss, data, blocks, compile="yes")
    assert BlockHVP(model, loss, data, blocks, compile=True).mode == "forward"


def test_forward_mode_with_mse_loss_matches_the_dense_hessian():
    """Forward-over-reverse on a loss of floating targets (mse_loss; eager torch raised
    "ZeroTensors are immutable" before the targets got an explicit zero tangent)."""
    model, loss_fn, data = mse_problem()
    blocks = resolve_blocks(model, None)
    vecs = [torch.randn(2, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    out = BlockHVP(model, loss_fn, data, blocks, mode="forward")(vecs)
    _assert_dense_products(out, blocks, vecs, (model, loss_fn, data), 1e-12)


_COMPILED_MSE = """
import importlib.util, torch
spec = importlib.util.spec_from_file_location("nets_tests_conftest", {conftest!r})
conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conftest)
from nets.engine.blocks import resolve_blocks
from nets.engine.hvp import BlockHVP
model, loss_fn, data = conftest.mse_problem()
blocks = resolve_blocks(model, None)
vecs = [torch.ones(2, b.dim, dtype=torch.float64) for b in blocks]
eager = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")(vecs)
compiled = BlockHVP(model, loss_fn, data, blocks, compile=True)(vecs)
print(max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(compiled, eager)))
"""


@pytest.mark.slow
@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="no torch.compile here")
def test_compiled_products_with_mse_loss_run_and_equal_the_eager_ones(tmp_path):
    """compile=True on a loss of floating targets: the compiled product read the targets'
    ZeroTensor tangent as memory and crashed the process (a segfault in a CPU Inductor kernel,
    pytorch#197067) before they got an explicit zero tangent; run in a child process, so a crash
    fails this test instead of the session."""
    conftest = str(Path(__file__).with_name("conftest.py"))
    p = subprocess.run([sys.executable, "-c", _COMPILED_MSE.format(conftest=conftest)],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-2000:]
    assert float(p.stdout.split()[-1]) < 1e-10


@pytest.mark.slow
@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="no torch.compile here")
@pytest.mark.skipif(not modes_module.compile_options(), reason="torch.compile has no limit option")
def test_compiled_products_of_more_models_than_torchs_limit_all_compile():
    """Ten models in one process: each compiles its own product (torch's own limit of 8 per
    function ran the ninth and tenth uncompiled, with a warning in its log only)."""
    counters = torch._dynamo.utils.counters
    before = counters["stats"]["unique_graphs"]
    for i in range(10):
        g = torch.Generator().manual_seed(i)
        model = torch.nn.Sequential(torch.nn.Linear(2 + i, 3), torch.nn.Tanh(),
                                    torch.nn.Linear(3, 2)).double()
        data = [(torch.randn(4, 2 + i, generator=g, dtype=torch.float64),
                 torch.randint(0, 2, (4,), generator=g))]
        blocks = resolve_blocks(model, None)
        vecs = [torch.ones(1, b.dim, dtype=torch.float64) for b in blocks]
        BlockHVP(model, torch.nn.functional.cross_entropy, data, blocks, compile=True)(vecs)
        assert counters["stats"]["unique_graphs"] == before + i + 1, i


@pytest.mark.slow
@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="no torch.compile here")
def test_compiled_products_equal_uncompiled(sdpa_problem):
    """torch.compile'd forward-over-reverse products equal the eager ones to round-off and the
    dense Hessian's blocks times the vectors (LayerNorm + SDPA model; one batch and one stack
    shape, so one compilation: every new shape recompiles)."""
    model, loss_fn, data = sdpa_problem
    data = [(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))]
    blocks = resolve_blocks(model, None)
    vecs = [torch.randn(2, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    eager = BlockHVP(model, loss_fn, data, blocks, mode="forward")(vecs)
    op = BlockHVP(model, loss_fn, data, blocks, compile=True)
    compiled = op(vecs)
    assert op.info()["compiled"] and op.info()["hvp_mode"] == "forward"
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12 * float(a.abs().max()))
    _assert_dense_products(compiled, blocks, vecs, (model, loss_fn, data), 1e-10)


def test_forward_products_are_chunked_outside_vmap(mlp_problem):
    """Forward-over-reverse runs each chunk of at most ``chunk_size`` stacked rows in one
    ``vmap`` call without a ``chunk_size`` of its own: a compiled product's guards then do not
    hold the budget's chunk size, which differs between operators (and recompiled it for each)."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    vecs = [torch.randn(3, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    ref = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")(vecs)
    op = BlockHVP(model, loss_fn, data, blocks, mode="forward", chunk_size=4)
    calls: list = []
    product = op._hvp

    def recording(params, x, y, tangents, **kwargs):
        calls.append((next(iter(tangents.values())).shape[0], kwargs))
        return product(params, x, y, tangents, **kwargs)

    op._hvp = recording
    for a, b in zip(op(vecs), ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12 * float(b.abs().max()))
    assert sum(n for n, _ in calls) == 3 * len(blocks) * len(data)  # every row, every batch
    assert max(n for n, _ in calls) == 4 and all(kwargs == {} for _, kwargs in calls)


@pytest.mark.slow
@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="no torch.compile here")
def test_a_compiled_product_is_not_recompiled_for_another_operators_chunk_size(mlp_problem):
    """Two operators on one model whose budgets give other chunk sizes (both above the rows
    stacked) run the same compiled product: the second compiles nothing."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    vecs = [torch.randn(2, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    BlockHVP(model, loss_fn, data, blocks, compile=True, chunk_size=64)(vecs)
    counters = torch._dynamo.utils.counters
    compiled = counters["stats"]["unique_graphs"]
    assert compiled > 0
    BlockHVP(model, loss_fn, data, blocks, compile=True, chunk_size=32)(vecs)
    assert counters["stats"]["unique_graphs"] == compiled


@pytest.mark.parametrize("mode", ["reverse", "reverse-block", "reverse-bundle", "auto"])
def test_budget_chooses_one_graph_at_a_time_with_the_same_products(mode, request):
    """A budget that holds one batch's graph but not all of them: ``one-at-a-time`` (every call
    builds each batch's graph once, batches outermost, and keeps none), products equal to the
    ``keep-all`` ones and to the dense Hessian's blocks. (``auto`` may calibrate to
    forward-over-reverse, which holds no graph: ``"none"``.)"""
    problem = "sdpa_problem"  # LayerNorm and fused attention
    model, loss_fn, data, h, names, offsets = _with_dense(request, problem)
    blocks = resolve_blocks(model, None)
    vecs = [torch.randn(3, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    roomy = BlockHVP(model, loss_fn, data, blocks, mode=mode)
    keep_all = roomy(vecs)
    forward = roomy.info()["hvp_mode"] == "forward"
    assert roomy.info()["graph_strategy"] == ("none" if forward else "keep-all")
    assert roomy.info()["graphs_kept"] == (0 if forward else len(data))
    sizes_b = [roomy.plan.graph_sizes()[i] for i in range(len(data))]
    # one graph and a tangent fit, all graphs and a tangent do not
    budget = sum(sizes_b) + roomy.plan.per_tangent() - 1
    assert budget >= max(sizes_b) + roomy.plan.per_tangent()
    forwards = []
    hook = model.register_forward_hook(lambda *_: forwards.append(1))
    try:
        tight = BlockHVP(model, loss_fn, data, blocks, mode=mode, max_memory=budget)
        before = len(forwards)
        for call in range(2):
            n0 = len(forwards)
            with warnings.catch_warnings():  # a budget the products fit in
                warnings.filterwarnings("error", message="max_memory=.* is below the least")
                out = tight(vecs)
            info = tight.info()
            expected = "none" if info["hvp_mode"] == "forward" else "one-at-a-time"
            assert info["graph_strategy"] == expected and info["graphs_kept"] == 0
            if call == 1:  # one graph build (one forward) per batch and call, no more
                assert len(forwards) - n0 == len(data)
            for b, o, k in zip(blocks, out, keep_all, strict=True):
                i = names.index(b.name)
                ref = vecs[blocks.index(b)].numpy() @ h[offsets[i]:offsets[i + 1],
                                                        offsets[i]:offsets[i + 1]]
                np.testing.assert_allclose(o.numpy(), ref, rtol=0, atol=1e-10 * np.abs(h).max(),
                                           err_msg=f"{mode} {b.name}")
                torch.testing.assert_close(o, k, rtol=0, atol=1e-13 * float(np.abs(h).max()))
        assert len(forwards) > before
    finally:
        hook.remove()


@pytest.mark.parametrize("mode", ["reverse", "reverse-block", "reverse-bundle"])
def test_one_graph_at_a_time_is_built_for_the_called_blocks_only(mode, request, monkeypatch):
    """With one graph at a time, a call for some blocks builds each batch's graph with respect
    to their parameters alone (autograd records from the earliest of them on): those are the
    graph's leaves, and the products still equal the dense Hessian's blocks."""
    problem = "sdpa_problem"
    model, loss_fn, data, h, names, offsets = _with_dense(request, problem)
    blocks = resolve_blocks(model, None)
    roomy = BlockHVP(model, loss_fn, data, blocks, mode=mode)
    budget = (sum(roomy.plan.graph_sizes()[i] for i in range(len(data))) + roomy.plan.per_tangent()
              - 1)
    # the graph bound (no measuring build at the first call: counted by its own test)
    tight = BlockHVP(model, loss_fn, data, blocks, mode=mode, max_memory=budget,
                     measure_tangents=False)
    built: list[tuple[str, ...] | None] = []
    build = GradientGraphs.build

    def recording(self, x, y, names=None):
        built.append(None if names is None else tuple(names))
        return build(self, x, y, names)

    monkeypatch.setattr(GradientGraphs, "build", recording)
    last = len(blocks) - 1
    for chosen in ([last], [len(blocks) // 2, last], list(range(len(blocks)))):
        vecs = [torch.randn(2, b.dim, generator=torch.Generator().manual_seed(i),
                            dtype=torch.float64) if i in chosen else None
                for i, b in enumerate(blocks)]
        built.clear()
        out = tight(vecs)
        assert tight.info()["graph_strategy"] == "one-at-a-time"
        want = tuple(n for n in tight.names if any(n in blocks[i].params for i in chosen))
        assert built == [want] * len(data)
        assert len(want) < len(tight.names) or len(chosen) == len(blocks)
        for i, (b, o) in enumerate(zip(blocks, out, strict=True)):
            if i not in chosen:
                assert o is None
                continue
            j = names.index(b.name)
            ref = vecs[i].numpy() @ h[offsets[j]:offsets[j + 1], offsets[j]:offsets[j + 1]]
            np.testing.assert_allclose(o.numpy(), ref, rtol=0, atol=1e-10 * np.abs(h).max(),
                                       err_msg=f"{mode} {b.name} of {chosen}")


@pytest.mark.filterwarnings("ignore:max_memory=1 bytes is below the least:UserWarning")
def test_graph_strategy_in_spectrum_info(attention_problem):
    """The strategy the budget chose is in the run's info (and so in results' metadata)."""
    model, loss_fn, data = attention_problem[:3]
    roomy: dict = {}
    tight: dict = {}
    a = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=4, probes=2, info=roomy,
                                mode="reverse-block")
    b = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=4, probes=2, info=tight,
                                mode="reverse-block", max_memory=1)
    assert roomy["graph_strategy"] == "keep-all" and tight["graph_strategy"] == "one-at-a-time"
    for name in a:
        scale = np.abs(a[name].nodes).max()
        np.testing.assert_allclose(b[name].nodes, a[name].nodes, rtol=0, atol=1e-9 * scale)


@pytest.mark.filterwarnings("ignore:max_memory=1 bytes is below the least:UserWarning")
@pytest.mark.parametrize(("mode", "budget"), [("reverse-block", None), ("reverse-block", 1),
                                              ("forward", None)],
                         ids=["keep-all", "one-at-a-time", "forward"])
def test_operator_build_evaluates_each_batch_once_plus_one_graph(mlp_problem, mode, budget):
    """Forward calls (a counting forward hook): building the operator evaluates each of the
    ``B`` batches once plus batch 0 a second time (the determinism check, a forward without
    backward), the first of those being the graph build that measures its size. Under
    ``"keep-all"`` the builds are the ``B`` graphs the products use, the measured one among
    them: the first call then costs no forward at all, nor does a second. Where graphs are not
    kept (forward mode, or a budget no graph fits) the checks are forward calls and each call
    costs one forward per batch (forward-over-reverse passes, or graph builds), the first call
    one more where it measures a tangent's bytes on a graph of batch 0 built for that."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    vecs = [torch.ones(2, b.dim, dtype=torch.float64) for b in blocks]
    calls = []
    builds = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    build = GradientGraphs.build

    def counted_build(self, x, y, names=None):
        builds.append(1)
        return build(self, x, y, names)

    kept = mode != "forward" and budget is None
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(GradientGraphs, "build", counted_build)
            op = BlockHVP(model, loss_fn, data, blocks, mode=mode, max_memory=budget)
        assert len(calls) == len(data) + 1
        assert len(builds) == (len(data) if kept else 1)  # the measuring build, always
        assert op.graph_bytes > 0  # measured during the data check
        n = len(calls)
        first = op(vecs)
        measuring = op.info()["tangent_estimate"] == "measured"
        assert not measuring  # the graph bound, the default
        assert len(calls) - n == (0 if kept else len(data) + measuring)
        assert op.info()["graphs_kept"] == (len(data) if kept else 0)
        n = len(calls)
        assert all(torch.equal(a, b) for a, b in zip(first, op(vecs), strict=True))
        assert len(calls) - n == (0 if kept else len(data))
    finally:
        hook.remove()


def test_kept_graphs_equal_graphs_built_at_the_first_call(mlp_problem):
    """The graphs the data check keeps give the products of graphs built afresh, bit for bit
    (an operator whose kept graphs are dropped before its first call rebuilds them)."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    vecs = [torch.randn(3, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=torch.float64) for i, b in enumerate(blocks)]
    kept = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    fresh = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    assert len(kept.graphs.kept) == len(data)
    fresh.graphs.drop()
    for a, b in zip(kept(vecs), fresh(vecs), strict=True):
        assert torch.equal(a, b)
    assert fresh.info()["graphs_kept"] == len(data)


def test_data_check_keeps_graphs_only_while_they_fit(mlp_problem):
    """A budget with room for batch 0's graph but not for all of them: the data check keeps
    none (the strategy is one-at-a-time), and the products match the roomy operator's."""
    model, loss_fn, data = mlp_problem[:3]
    assert len(data) >= 2
    blocks = resolve_blocks(model, None)
    roomy = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    one = roomy.plan.graph_sizes()[0] + roomy.plan.per_tangent()
    tight = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=one)
    assert len(tight.graphs.kept) == 0 and tight.graphs.kept_bytes == 0
    vecs = [torch.ones(2, b.dim, dtype=torch.float64) for b in blocks]
    out = tight(vecs)
    assert tight.info()["graph_strategy"] == "one-at-a-time"
    scale = max(float(o.abs().max()) for o in roomy(vecs))
    for a, b in zip(out, roomy(vecs), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12 * scale)


def test_graph_size_estimates_scale_with_each_batch_samples(mlp_problem):
    """Batch ``i``'s graph is estimated as the measured batch-0 graph times ``n_i / n_0`` (the
    batches' sample counts, not their loss weights ``n_i / N``) plus the gradient it holds (a
    parameter copy), and the strategy follows the
    estimate: a budget one byte short of every graph plus one tangent holds one graph at a
    time, one that fits keeps them all. (Budgets from the measured size, not the estimator.)"""
    model, loss_fn, data = mlp_problem[:3]
    samples = [len(y) for _, y in data]
    assert len(set(samples)) > 1  # unequal batches: the ratio is visible
    blocks = resolve_blocks(model, None)
    roomy = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    measured = roomy.graph_bytes
    assert measured > 1
    # a kept graph holds its saved tensors (scaled by the samples) and its gradient
    gradient = sum(p.numel() * p.element_size() for p in model.parameters())
    for i, n in enumerate(samples):
        assert roomy.plan.graph_sizes()[i] == int(np.ceil(measured * n / samples[0])) + gradient
    all_graphs = sum(int(np.ceil(measured * n / samples[0])) + gradient for n in samples)
    fits = all_graphs + roomy.plan.per_tangent()
    vecs = [torch.ones(1, b.dim, dtype=torch.float64) for b in blocks]
    for budget, strategy, kept in ((fits, "keep-all", len(data)),
                                   (fits - 1, "one-at-a-time", 0)):
        op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=budget,
                      measure_tangents=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a budget the products fit in: no warning
            op(vecs)
        info = op.info()
        assert (info["graph_strategy"], info["graphs_kept"]) == (strategy, kept), budget


def test_a_budget_below_the_least_warns(mlp_problem):
    """A run needs at least the largest batch's graph, one tangent and the Lanczos vectors'
    room (half a tangent when no smallest group is reserved, as here): a smaller
    ``max_memory`` runs at that least (over the budget) and says so, naming it."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    probe = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    tangent = probe.plan.per_tangent()
    least = max(probe.plan.graph_sizes()[i] for i in range(len(data))) + tangent + tangent // 2
    vecs = [torch.ones(1, b.dim, dtype=torch.float64) for b in blocks]
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=least,
                  measure_tangents=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op(vecs)
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=least - 1,
                  measure_tangents=False)
    with pytest.warns(UserWarning, match=f"below the least .* about {least} bytes"):
        op(vecs)
    assert op.info()["graph_strategy"] == "one-at-a-time" and op.chunk_size == 1
    with warnings.catch_warnings():  # once per operator
        warnings.simplefilter("error")
        op(vecs)


def test_a_budget_below_the_least_warns_when_the_vectors_are_reserved(mlp_problem):
    """Where the run reserves the Lanczos vectors' room (operator_spectra), the warning comes
    then, before the vectors are grouped and the first product runs, and not again."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=1,
                  measure_tangents=False)
    op.settle_tangents(len(blocks))
    with pytest.warns(UserWarning, match="below the least this run holds") as rec:
        op.reserve_vectors(0)
    assert len(rec) == 1 and op.calls == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op([torch.ones(1, b.dim, dtype=torch.float64) for b in blocks])


@pytest.mark.parametrize("mode", ["reverse", "reverse-block", "reverse-bundle"])
def test_least_budget_is_the_largest_graph_and_one_tangent(mode, request):
    """``max_memory="least"``: the budget becomes the largest batch's graph (batch 0's measured
    graph scaled by the batches' sample counts, the largest batch last here) plus one tangent
    (a graph and a parameter copy) plus the Lanczos vectors' room, half a tangent, with no
    warning; one graph at a time, one tangent per product; the products equal the dense
    Hessian's blocks (LayerNorm and fused attention)."""
    model, loss_fn, data, h, names, offsets = _with_dense(request, "sdpa_problem")
    data = data[::-1]  # the same mean loss, the larger batch last
    samples = [len(y) for _, y in data]
    assert samples[-1] > samples[0]
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, loss_fn, data, blocks, mode=mode, max_memory="least",
                  measure_tangents=False)  # the graph bound (measured: the next test)
    eyes = [torch.eye(b.dim, dtype=torch.float64) for b in blocks]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the least is no under-budget run
        out = op(eyes)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    largest = int(np.ceil(op.graph_bytes * max(samples) / samples[0])) + params  # + gradient
    tangent = op.graph_bytes + params
    least = largest + tangent + tangent // 2
    info = op.info()
    assert (info["max_memory"], info["requested_max_memory"]) == (least, "least")
    assert info["graph_strategy"] == "one-at-a-time" and info["graphs_kept"] == 0
    assert op.chunk_size == 1
    assert op.vector_budget() == (tangent // 2, None)
    scale = np.abs(h).max()
    for b, o in zip(blocks, out, strict=True):
        i = names.index(b.name)
        ref = h[offsets[i]:offsets[i + 1], offsets[i]:offsets[i + 1]]
        np.testing.assert_allclose(o.numpy(), ref, rtol=0, atol=1e-11 * scale, err_msg=b.name)


@pytest.mark.parametrize("problem", ["mlp_problem", "attention_problem", "sdpa_problem"])
@pytest.mark.parametrize("mode", ["reverse-block", "reverse", "reverse-bundle"])
@pytest.mark.parametrize("tangents", [1, 3])
def test_measured_tangent_bytes_cover_what_a_call_holds(problem, mode, tangents, request):
    """The measured per-tangent estimate is a bound: with every graph kept, a call holds
    beyond its products (``product_copies`` of them, the Lanczos vectors' share) no more than
    ``chunk_size`` tangents' estimate, counted by :class:`LiveBytes` (LayerNorm and fused
    attention among the problems)."""
    model, loss_fn, data = request.getfixturevalue(problem)[:3]
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, loss_fn, data, blocks, mode=mode, chunk_size=tangents,
                  measure_tangents=True)
    vecs = [torch.randn(tangents, b.dim, generator=torch.Generator().manual_seed(i),
                        dtype=op.dtype) for i, b in enumerate(blocks)]
    op(vecs)  # plans (measuring), keeps every graph
    info = op.info()
    assert info["tangent_estimate"] == "measured" and info["graphs_kept"] == len(data)
    assert info["tangent_measure_seconds"] > 0
    with LiveBytes() as count:
        out = op(vecs)
        returned = sum(o.untyped_storage().nbytes() for o in out)
    assert count.peak - op.product_copies * returned <= tangents * info["tangent_bytes"]


def test_tangent_bytes_are_measured_where_the_graph_bound_binds(mlp_problem):
    """Measured where asked, or (by default) where the graph bound limits the plan: under
    ``"least"``, or where the budget's chunks would stack fewer tangents than the call has;
    the graph bound with room to spare, where asked, and wherever forward-over-reverse may run
    (it builds a graph per tangent)."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)

    def source(rows: int = 2, **options) -> str:
        op = BlockHVP(model, loss_fn, data, blocks, **options)
        op([torch.ones(rows, b.dim, dtype=torch.float64) for b in blocks])
        info = op.info()
        assert (info["tangent_bytes"] == op.plan.graph_bound()) == (
            info["tangent_estimate"] == "graph bound")
        return info["tangent_estimate"]

    roomy = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    all_graphs = sum(roomy.plan.graph_sizes()[i] for i in range(len(data)))
    one_tangent = all_graphs + roomy.plan.graph_bound()  # every graph, room for one tangent
    assert source(mode="reverse-block", max_memory=LEAST) == "graph bound"  # the default
    bind = {"mode": "reverse-block", "measure_tangents": None}  # measured where it binds
    assert source(**bind) == "graph bound"  # the default budget: room to spare
    assert source(**bind, max_memory=LEAST) == "measured"
    assert source(**bind, max_memory=one_tangent) == "measured"
    assert source(**bind, max_memory=one_tangent, chunk_size=1) == "graph bound"
    assert source(mode="reverse-block", measure_tangents=True) == "measured"
    assert source(mode="reverse-block", max_memory=LEAST, measure_tangents=False) == (
        "graph bound")
    assert source(mode="forward", measure_tangents=True) == "graph bound"
    assert source(mode="auto", measure_tangents=True) == "measured"  # 8 rows: no forward
    many = FORWARD_MIN_TANGENTS_CPU  # rows per block: forward-over-reverse may run
    assert source(many, mode="auto", measure_tangents=True) == "graph bound"


@pytest.mark.parametrize("row", [1, 10**6], ids=["blocks-larger", "padded-row-larger"])
@pytest.mark.parametrize("mode", ["reverse-block", "reverse", "reverse-bundle", "auto"])
def test_measured_estimate_scales_to_the_largest_batch_and_counts_padding(mlp_problem,
                                                                          monkeypatch, mode,
                                                                          row):
    """Measured transients (set here) scale from batch 0 to the largest batch. Where
    zero-padded rows may run the estimate is the larger of the block-restricted transient plus
    two parameter copies (a padded tangent and its full-space product) and a padded row's
    measured bytes; ``"least"`` is then the largest graph, that estimate and half of it for
    the Lanczos vectors."""
    model, loss_fn, data = mlp_problem[:3]
    data = data[::-1]  # batch 0 is not the largest
    samples = [len(y) for _, y in data]
    assert max(samples) > samples[0]
    monkeypatch.setattr(hvp_module, "block_tangent_bytes", lambda graph, *a: 1000)
    padded_rows = []
    monkeypatch.setattr(hvp_module, "padded_row_bytes",
                        lambda graph, *a: padded_rows.append(1) or row)
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, loss_fn, data, blocks, mode=mode, max_memory=LEAST,
                  measure_tangents=None)  # measured where the bound binds: here
    op([torch.ones(1, b.dim, dtype=torch.float64) for b in blocks])
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    ratio = max(samples) / samples[0]
    expected = int(np.ceil(1000 * ratio))
    if mode != "reverse-block":  # auto may try "reverse" here
        expected = max(expected + 2 * params, int(np.ceil(row * ratio)))
    assert len(padded_rows) == (mode != "reverse-block")
    info = op.info()
    assert (info["tangent_bytes"], info["tangent_estimate"]) == (expected, "measured")
    assert info["max_memory"] == (max(op.plan.graph_sizes()[i] for i in range(len(data)))
                                  + expected + expected // 2)


def test_a_measurement_that_cannot_run_keeps_the_graph_bound(mlp_problem, monkeypatch):
    """Where the dispatch-level count fails, the operator plans with the graph bound and its
    products are unchanged."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    vecs = [torch.ones(2, b.dim, dtype=torch.float64) for b in blocks]
    reference = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")(vecs)

    class Failing(LiveBytes):
        def __enter__(self):
            raise RuntimeError("no dispatch mode here")

    monkeypatch.setattr(tangents_module, "LiveBytes", Failing)
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=LEAST,
                  measure_tangents=True)
    out = op(vecs)
    assert op.info()["tangent_estimate"] == "graph bound"
    assert op.info()["tangent_bytes"] == op.plan.graph_bound()
    scale = max(float(r.abs().max()) for r in reference)
    for a, b in zip(out, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12 * scale)


def test_measure_tangents_must_be_a_bool_or_none(mlp_problem):
    model, loss_fn, data = mlp_problem[:3]
    with pytest.raises(TypeError, match="measure_tangents must be True, False or None"):
        BlockHVP(model, loss_fn, data, resolve_blocks(model, None), measure_tangents="yes")


def test_least_budget_keeps_the_graph_of_one_batch(mlp_problem):
    """With one batch the least holds its graph: it is kept across calls (``keep-all``), and a
    spectrum at the least equals the default budget's to round-off."""
    model, loss_fn, data = mlp_problem[:3]
    one = data[:1]
    blocks = resolve_blocks(model, None)
    op = BlockHVP(model, loss_fn, one, blocks, mode="reverse-block", max_memory="least")
    op([torch.ones(2, b.dim, dtype=torch.float64) for b in blocks])
    info = op.info()
    assert (info["graph_strategy"], info["graphs_kept"]) == ("keep-all", 1)
    for batches in (one, data):
        a, b = ({}, {})
        least = nets.blockwise_spectrum(model, loss_fn, batches, lanczos_steps=6, probes=2,
                                        max_memory="least", info=a)
        roomy = nets.blockwise_spectrum(model, loss_fn, batches, lanczos_steps=6, probes=2,
                                        info=b)
        assert a["lanczos_groups"] >= b["lanczos_groups"]
        for name, s in roomy.items():
            scale = np.abs(s.nodes).max()
            np.testing.assert_allclose(least[name].nodes, s.nodes, rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("budget, err, match", [
    ("lest", ValueError, "max_memory must be a number of bytes, 'least' .* got 'lest'"),
    ("1G", ValueError, "max_memory must be a number of bytes, 'least'"),
    (1.5, TypeError, "max_memory must be a positive integer, 'least' or None, got float"),
])
def test_bad_memory_budgets_name_what_to_pass(mlp_problem, budget, err, match):
    model, loss_fn, data = mlp_problem[:3]
    with pytest.raises(err, match=match):
        BlockHVP(model, loss_fn, data, resolve_blocks(model, None), max_memory=budget)


def test_cli_least_memory_budget(tmp_path, capsys):
    """``--max-memory least`` reaches the engine (its bytes and the request in --json); a
    budget that is neither a size nor ``least`` exits 2 naming both."""
    argv = ["spectrum", "--model", "mlp", "--steps", "3", "--probes", "1", "--quiet",
            "--device", "cpu", "--json", "--blocks", "--out", str(tmp_path / "r.json"),
            "--max-memory"]
    assert cli.main([*argv, "least"]) == 0
    engine = json.loads(capsys.readouterr().out)["engine"]
    assert engine["requested_max_memory"] == "least"
    assert engine["max_memory"] > engine["graph_bytes"] > 0
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "lots"])
    assert e.value.code == 2
    assert "'lots' is not a memory budget" in capsys.readouterr().err


def test_determinism_check_still_compares_two_evaluations():
    """The second evaluation of batch 0 (the measured graph build) is still compared with the
    first: a loss that changes between calls is refused when the operator is built."""
    model = torch.nn.Linear(3, 1).double()
    count = []

    def loss_fn(out, y):
        count.append(1)
        return ((out.squeeze(-1) - y) ** 2).mean() * (1 + 1e-3 * len(count))

    data = [(torch.ones(4, 3, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))]
    with pytest.raises(ValueError, match="not deterministic"):
        BlockHVP(model, loss_fn, data, resolve_blocks(model, None))
    assert len(count) == 2


@pytest.mark.parametrize(("tangents", "chunk_size", "size"), [
    (1, None, 6), (2, None, 3), (3, None, 2), (4, None, 2), (5, None, 1), (10, None, 1),
    (1, 4, 4), (2, 5, 2), (3, 4, 1), (1, 1, 1), (7, 3, 1)])
def test_bundle_size_aims_at_bundle_rows_within_the_chunk(tangents, chunk_size, size):
    """Blocks per bundle: about BUNDLE_ROWS rows per double backward, never more rows than a
    chunk, at least one block."""
    assert modes_module.BUNDLE_ROWS == 6
    assert modes_module.bundle_blocks(tangents, chunk_size) == size


def test_auto_bundles_only_where_a_bundle_holds_several_blocks(mlp_problem, monkeypatch):
    """Where bundles are tried (an accelerator, or a CPU with BUNDLE_ON_CPU): with one tangent
    per block, auto times reverse-bundle (bundles of several blocks) and keeps whichever is
    faster, its products equal to reverse-block's; with many tangents per block (a bundle of
    one block) it skips it and says why; a full spectrum (one block) too. On a CPU by default
    it is not tried, and says so."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    ones = [torch.ones(1, b.dim, dtype=torch.float64) for b in blocks]
    default = BlockHVP(model, loss_fn, data, blocks)
    default(ones)
    assert default.info()["calibration"]["skipped"]["reverse-bundle"].startswith(
        "not tried on a CPU (BUNDLE_ON_CPU)")
    assert default.mode != "reverse-bundle"
    monkeypatch.setattr(modes_module, "BUNDLE_ON_CPU", True)

    def vectors(m):
        return [torch.randn(m, b.dim, generator=torch.Generator().manual_seed(i),
                            dtype=torch.float64) for i, b in enumerate(blocks)]

    few = BlockHVP(model, loss_fn, data, blocks)
    out = few(vectors(1))
    assert "reverse-bundle" in few.info()["calibration"]["seconds"]
    ref = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")(vectors(1))
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    many = BlockHVP(model, loss_fn, data, blocks)
    many(vectors(8))
    assert many.info()["calibration"]["skipped"]["reverse-bundle"] == (
        "one block per bundle: the same product as reverse-block")
    whole = resolve_blocks(model, {"all": [n for n, _ in model.named_parameters()]})
    full = BlockHVP(model, loss_fn, data, whole)
    full([torch.ones(1, whole[0].dim, dtype=torch.float64)])
    assert full.info()["calibration"]["skipped"]["reverse-bundle"] == (
        "one block: nothing to bundle")


@pytest.mark.parametrize("tangents_room", [1.5, 2, 4, 9])
def test_graphs_tangents_and_vectors_share_a_given_budget(mlp_problem, tangents_room):
    """With a given budget the held graphs, the stacked tangents (``chunk_size`` of them, each
    a graph plus a parameter copy) and the Lanczos vectors' most (``vector_budget``'s limit)
    add up to no more than ``max_memory``: the tangents get half of the rest, and at least
    the one tangent a product holds, the vectors what is left. (Sizing the tangents on the
    whole rest counted the vectors' half twice: the GPU check's peaks rose up to half as much
    again as their budgets. Halves alone, with a rest under two tangents, gave the vectors
    room the one tangent then took.)"""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    probe = BlockHVP(model, loss_fn, data, blocks, mode="reverse")
    per_tangent = probe.plan.per_tangent()
    held = sum(probe.plan.graph_sizes()[i] for i in range(len(data)))  # every graph kept
    budget = held + int(tangents_room * per_tangent)
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse", max_memory=budget,
                  measure_tangents=False)  # the probe's graph bound (the arithmetic)
    op([torch.zeros(1, b.dim, dtype=torch.float64) for b in blocks])
    assert op.graph_strategy == "keep-all"
    limit, lean = op.vector_budget()
    assert lean is None  # a given budget: no lean packing
    rest = budget - held
    tangents = max(per_tangent, rest // 2)
    assert limit == rest - tangents
    assert op.chunk_size == tangents // per_tangent >= 1
    assert held + op.chunk_size * per_tangent + limit <= budget


@pytest.mark.parametrize("budget", ["between", "least"])
def test_vectors_are_sized_for_the_graphs_a_measured_tangent_lets_the_products_hold(
        mlp_problem, monkeypatch, budget):
    """A measured per-tangent estimate (set small here) is settled before the Lanczos vectors
    are sized: the vectors get the room of the strategy the products then run. Between the
    two, a budget that held one graph at a time beside the graph bound holds every graph
    beside the measurement; vectors sized before the measurement got one-at-a-time's room and
    graphs, tangent and vectors together exceeded the budget. Under ``"least"`` the budget
    itself shrinks with the measurement."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    probe = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    graphs = sum(probe.plan.graph_sizes()[i] for i in range(len(data)))
    bound = probe.plan.graph_bound()
    monkeypatch.setattr(hvp_module, "block_tangent_bytes", lambda graph, *a: 16)
    sized = []
    own = BlockHVP.vector_budget
    monkeypatch.setattr(BlockHVP, "vector_budget",
                        lambda self: sized.append(own(self)) or sized[-1])
    # the vectors' smallest group: one probe of the largest block (basis, start, product, its
    # two copies) and the float64 work row; the vectors get what the tangents leave
    smallest = max((min(5, b.dim) + 4) * b.dim * 8 + 8 * b.dim for b in blocks)
    max_memory = graphs + bound + smallest - 1 if budget == "between" else LEAST
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", max_memory=max_memory,
                  measure_tangents=True)
    op.reserve_vectors(smallest)  # what operator_spectra reserves (again) below
    before = op._strategy()[0], op.max_memory  # under the graph bound
    sized.clear()
    assert before[0] == "one-at-a-time"
    info = {}
    operator_spectra(op, lanczos_steps=5, probes=3, seed=0, info=info)
    assert info["tangent_estimate"] == "measured" and info["tangent_bytes"] == 16
    strategy, held = op._strategy()
    assert info["graph_strategy"] == strategy == (
        "keep-all" if budget == "between" else "one-at-a-time")
    assert sized == [own(op)]  # the vectors' room is the room of the strategy that ran
    limit = sized[0][0]
    assert held + op.chunk_size * 16 + limit <= op.max_memory
    assert limit >= smallest
    if budget == "least":  # the budget shrank with the measurement, to graph, tangent and the
        # vectors' smallest group
        assert limit == smallest
        assert op.max_memory == (max(op.plan.graph_sizes()[i] for i in range(len(data))) + 16
                                 + smallest)
        assert op.max_memory < before[1]


def test_a_larger_measured_tangent_drops_the_graphs_the_data_check_kept(mlp_problem,
                                                                        monkeypatch):
    """The data check keeps the graphs that fit beside the graph bound; a measured tangent
    larger than the bound (set here) then plans one graph at a time, and the kept graphs are
    dropped: before, they stayed alive beside the graph each call rebuilt (on the test
    attention model a whole run then held 1.2 times its budget in live tensors)."""
    model, loss_fn, data = mlp_problem[:3]
    blocks = resolve_blocks(model, None)
    probe = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    graphs = sum(probe.plan.graph_sizes()[i] for i in range(len(data)))
    bound = probe.plan.graph_bound()
    op = BlockHVP(model, loss_fn, data, blocks, mode="reverse-block",
                  max_memory=graphs + 2 * bound, measure_tangents=True)
    assert op.info()["graphs_kept"] == len(data)  # the data check kept every graph
    monkeypatch.setattr(hvp_module, "block_tangent_bytes", lambda graph, *a: 3 * bound)
    op([torch.ones(1, b.dim, dtype=torch.float64) for b in blocks])
    info = op.info()
    assert info["tangent_bytes"] == 3 * bound and info["graph_strategy"] == "one-at-a-time"
    assert info["graphs_kept"] == 0


def test_settle_tangents_refuses_a_row_count_that_is_not_positive(mlp_problem):
    model, loss_fn, data = mlp_problem[:3]
    op = BlockHVP(model, loss_fn, data, resolve_blocks(model, None))
    with pytest.raises(ValueError, match="rows"):
        op.settle_tangents(0)


def test_blockwise_spectrum_passes_measure_tangents_and_keeps_its_numbers(mlp_problem):
    """``blockwise_spectrum(..., measure_tangents=True)`` plans with the measured estimate
    (``info`` says so) under the least budget, and its spectra equal the graph bound's to
    round-off; a value other than a bool or None is refused."""
    model, loss_fn, data = mlp_problem[:3]
    runs = {}
    for measure in (False, True):
        info = {}
        spectra = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=6, probes=2,
                                          max_memory="least", measure_tangents=measure,
                                          info=info)
        runs[measure] = spectra, info
    assert runs[False][1]["tangent_estimate"] == "graph bound"
    assert runs[True][1]["tangent_estimate"] == "measured"
    assert runs[True][1]["max_memory"] == (  # the least: the largest graph and that estimate
        runs[False][1]["max_memory"] - runs[False][1]["tangent_bytes"]
        + runs[True][1]["tangent_bytes"])
    for name, s in runs[False][0].items():
        scale = np.abs(s.nodes).max()
        np.testing.assert_allclose(runs[True][0][name].nodes, s.nodes, rtol=0,
                                   atol=1e-10 * scale)
    with pytest.raises(TypeError, match="measure_tangents must be True, False or None"):
        nets.blockwise_spectrum(model, loss_fn, data, measure_tangents="yes")
