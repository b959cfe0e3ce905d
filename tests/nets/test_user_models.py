"""Models as users have them (plain torch): input/output forms, roles, factories on the command
line, half precision, devices."""

from __future__ import annotations

import json
import textwrap
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import nets
import nets.cli.app as cli
from nets.engine.distributed import local_device
from nets.studies.tasks import factory_task, zoo_task
from nets.zoo import model_blocks, resolve_model


class TwoInputs(nn.Module):
    """``forward(a, b)`` returning a tuple ``(logits, hidden)``, float64."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.fa = nn.Linear(3, 4).double()
        self.fb = nn.Linear(2, 4).double()
        self.norm = nn.LayerNorm(4).double()
        self.out = nn.Linear(4, 3).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(torch.tanh(self.fa(a) + self.fb(b)))
        return self.out(h), h


def _first_ce(out, y):
    return nn.functional.cross_entropy(out[0], y)


def _two_input_data():
    g = torch.Generator().manual_seed(6)
    a = torch.randn(9, 3, generator=g, dtype=torch.float64)
    b = torch.randn(9, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (9,), generator=g)
    return a, b, y


def test_tuple_dict_and_labelled_batches_give_the_same_hessian():
    model = TwoInputs()
    a, b, y = _two_input_data()
    as_tuple = [((a[:5], b[:5]), y[:5]), ((a[5:], b[5:]), y[5:])]
    as_kwargs = [({"a": a[:5], "b": b[:5]}, y[:5]), ({"a": a[5:], "b": b[5:]}, y[5:])]
    as_dicts = [{"a": a[:5], "b": b[:5], "labels": y[:5]},
                {"a": a[5:], "b": b[5:], "labels": y[5:]}]
    h = [nets.dense_hessian(model, _first_ce, d) for d in (as_tuple, as_kwargs, as_dicts)]
    scale = np.abs(h[0]).max()  # the product mode is timed per run: equal up to round-off
    np.testing.assert_allclose(h[1], h[0], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(h[2], h[0], rtol=0, atol=1e-12 * scale)
    # against a float64 double-backward reference on the whole set (batch weights 5/9, 4/9)
    params = list(model.parameters())

    def loss(*ps):
        tensors = dict(zip([n for n, _ in model.named_parameters()], ps, strict=True))
        out = torch.func.functional_call(model, tensors, (a, b))
        return _first_ce(out, y)

    full = torch.autograd.functional.hessian(loss, tuple(p.detach() for p in params))
    sizes = [p.numel() for p in params]
    ref = np.block([[full[i][j].reshape(sizes[i], sizes[j]).numpy() for j in range(len(sizes))]
                    for i in range(len(sizes))])
    np.testing.assert_allclose(h[0], ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_mapping_batch_without_labels_is_refused():
    model = TwoInputs()
    a, b, _ = _two_input_data()
    with pytest.raises(TypeError, match="'labels'"):
        nets.dense_hessian(model, _first_ce, [{"a": a, "b": b}])


class Zoo(nn.Module):
    """One of each layer kind, for the role rules."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 8)
        self.pos = nn.Parameter(torch.zeros(1, 5, 8))
        self.attn = nn.MultiheadAttention(8, 2)
        self.ln = nn.LayerNorm(8)
        self.conv = nn.Conv1d(8, 8, 1)
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 3)


def test_roles_from_module_types_and_shapes():
    roles = nets.parameter_roles(Zoo())
    assert roles == {"pos": "embedding", "emb.weight": "embedding",
                     "attn.in_proj_weight": "weight", "attn.in_proj_bias": "bias",
                     "attn.out_proj.weight": "weight", "attn.out_proj.bias": "bias",
                     "ln.weight": "norm", "ln.bias": "norm", "conv.weight": "weight",
                     "conv.bias": "bias", "bn.weight": "norm", "bn.bias": "norm",
                     "head.weight": "weight", "head.bias": "bias"}


def test_role_blocks_split_fused_attention_per_head():
    model = Zoo()
    blocks = nets.role_blocks(model, ["weight"], split="heads")
    assert set(blocks) == {"attn.in_proj_weight.q.head0", "attn.in_proj_weight.q.head1",
                           "attn.in_proj_weight.k.head0", "attn.in_proj_weight.k.head1",
                           "attn.in_proj_weight.v", "attn.out_proj.weight", "conv.weight",
                           "head.weight"}
    assert blocks["attn.in_proj_weight.k.head1"] == ("attn.in_proj_weight", (slice(12, 16),))
    resolved = nets.resolve_blocks(model, blocks)  # disjoint and valid
    assert sum(b.dim for b in resolved) == sum(
        p.numel() for n, p in model.named_parameters() if nets.parameter_roles(model)[n] ==
        "weight")
    qkv = nets.role_blocks(model, None, split="qkv")
    assert qkv["attn.in_proj_bias.v"] == ("attn.in_proj_bias", (slice(16, 24),))
    with pytest.raises(ValueError, match="unknown role"):
        nets.role_blocks(model, ["weights"])


def test_zoo_blocks_by_role_drop_norm_gains():
    model, _, _ = resolve_model("vit", device="cpu")
    blocks = model_blocks("vit", model, "qkv", ["weight"])
    assert blocks and not any(".ln" in b or b.endswith("bias") for b in blocks)
    assert "layers.0.attn.q.weight" in blocks  # the zoo's own Q/K/V names are kept


FACTORY = textwrap.dedent("""
    import torch
    from torch import nn

    def make():
        g = torch.Generator().manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.Tanh(), nn.Linear(5, 3))
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        x = torch.randn(12, 4, generator=g)
        y = torch.randint(0, 3, (12,), generator=g)
        data = [{"input": x[:6], "labels": y[:6]}, {"input": x[6:], "labels": y[6:]}]
        return model, lambda out, t: nn.functional.cross_entropy(out, t), data

    def not_a_task():
        return make()
""")


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "usermodel.py"
    path.write_text(FACTORY)
    return path


def test_cli_spectrum_and_js0_on_a_factory_with_roles(factory_file, tmp_path, capsys):
    spec = f"{factory_file}:make"
    # dict batches with keyword 'input' reach nn.Sequential.forward(input)
    common = ["--model", spec, "--steps", "3", "--probes", "2", "--quiet", "--device", "auto"]
    out = tmp_path / "s.json"
    assert cli.main(["spectrum", *common, "--roles", "weight", "--json", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["block"] for r in doc["blocks"]] == ["0.weight", "3.weight"]
    assert doc["settings"]["roles"] == ["weight"] and doc["settings"]["dtype"] == "native"
    assert cli.main(["js0", *common, "--roles", "weight,norm", "--bootstrap", "5", "--json",
                     "--out", str(tmp_path / "j.json")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["blocks"] == ["0.weight", "1.weight", "1.bias", "3.weight"]
    assert 0.0 <= doc["js0"] <= 1.0
    assert cli.main(["spectrum", "--model", "no_such_module:make", "--quiet"]) == 2
    assert "cannot import" in capsys.readouterr().err


def test_gap_factory_must_return_a_task(factory_file):
    with pytest.raises(TypeError, match=r"must return a nets\.studies\.tasks\.Task"):
        factory_task(f"{factory_file}:not_a_task")
    path = factory_file.with_name("taskfactory.py")
    path.write_text("from nets.studies.tasks import zoo_task\n\ndef make():\n"
                    "    return zoo_task('mlp')\n")
    assert factory_task(f"{path}:make") == zoo_task("mlp")


def test_bfloat16_runs_with_a_warning_close_to_float64():
    model64, loss_fn, data = resolve_model("mlp", device="cpu", dtype=torch.float64)
    model16, _, data16 = resolve_model("mlp", device="cpu", dtype=torch.bfloat16)
    with pytest.warns(UserWarning, match="bfloat16.*float64"):
        s16 = nets.blockwise_spectrum(model16, loss_fn, data16[:1], lanczos_steps=6, probes=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        s64 = nets.blockwise_spectrum(model64, loss_fn, data[:1], lanczos_steps=6, probes=1)
    for name in s64:
        top16, top64 = s16[name].nodes.max(), s64[name].nodes.max()
        assert np.isfinite(top16)
        assert abs(top16 - top64) <= 3e-2 * abs(top64), name  # bf16 has 8 significant bits


def test_devices():
    assert local_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    model, _, data = resolve_model("mlp", device="auto")
    assert next(model.parameters()).device.type == local_device("auto").type
    assert data[0][0].device == next(model.parameters()).device
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_model("mlp", device="cuda")
    with pytest.raises(ValueError, match="gpu0"):
        resolve_model("mlp", device="gpu0")
