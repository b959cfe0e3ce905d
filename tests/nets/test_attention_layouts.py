"""Q/K/V blocks of Hugging Face attention layouts, checked against what each model computes.

The role split (:func:`nets.role_blocks`) reads where Q, K and V live from module types, names
and geometry. Here that claim is tested against the models' own forward passes, not against the
rule that made it: the query, key and value states each attention layer hands its attention
function are recorded, the coordinates of one block are perturbed, and exactly the part and
head the block's name claims must change (a Q head's block moves that query head and nothing
else; a V block moves every value head). Layouts: GPT-2's stacked ``Conv1D`` ``c_attn``,
GPT-NeoX's and BLOOM's per-head fused ``query_key_value``, Llama's separate projections with
grouped-query attention (fewer key/value heads than query heads), Phi-3's stacked fused
``qkv_proj`` with grouped-query sizes, GPT-BigCode's multi-query ``c_attn`` (one key/value head)
DistilBERT's ``q_lin``/``k_lin``/``v_lin``, DeBERTa's ``query_proj``/``key_proj``/
``value_proj``, and Falcon's fused ``query_key_value`` in each of the three layouts its config
chooses (per head; multi-query, stacked; the new decoder architecture's groups of query heads
with their key and value head), and CodeGen's ``qkv_proj``, laid out in 4 model-parallel
shards of query, value and key heads. A layout nets does not know is refused.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import torch

import nets
from nets.engine.blocks import resolve_blocks

transformers = pytest.importorskip("transformers")


def _config(family: str):
    tf = transformers
    common = dict(vocab_size=11, num_hidden_layers=1, attn_implementation="eager")
    if family == "gpt2":
        return tf.GPT2Config(n_embd=8, n_head=2, n_positions=8, bos_token_id=0,
                             eos_token_id=0, **common)
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=8, num_attention_heads=2, intermediate_size=8,
                                max_position_embeddings=8, rotary_pct=1.0,
                                attention_bias=True, **common)
    if family == "bloom":
        return tf.BloomConfig(hidden_size=8, n_head=2, **common)
    if family == "llama":
        return tf.LlamaConfig(hidden_size=8, intermediate_size=8, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=8,
                              bos_token_id=0, eos_token_id=0, pad_token_id=None,
                              attention_bias=True, **common)
    if family == "phi3":
        return tf.Phi3Config(hidden_size=8, intermediate_size=8, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=8,
                             bos_token_id=0, eos_token_id=0, pad_token_id=None, **common)
    if family == "gpt_bigcode":  # multi-query: one key/value head, c_attn rows (E, d, d)
        return tf.GPTBigCodeConfig(n_embd=8, n_head=2, n_positions=8, multi_query=True,
                                   **common)
    if family == "distilbert":  # q_lin, k_lin, v_lin
        return tf.DistilBertConfig(dim=8, n_heads=2, hidden_dim=8, n_layers=1,
                                   max_position_embeddings=8, vocab_size=11,
                                   attn_implementation="eager")
    if family.startswith("falcon"):  # one fused query_key_value, laid out by the config
        layout = {"falcon": dict(multi_query=False),  # per head: (H, 3, d)
                  "falcon_mq": dict(multi_query=True),  # stacked: (H d, d, d)
                  "falcon_new": dict(new_decoder_architecture=True, num_kv_heads=2),  # grouped
                  }[family]
        return tf.FalconConfig(hidden_size=8, num_attention_heads=4, bias=True, **layout,
                               **common)
    if family == "codegen":  # qkv_proj: 4 shards, each (q, v, k) of 2 heads of width 2
        return tf.CodeGenConfig(n_embd=16, n_head=8, n_positions=8, rotary_dim=2, n_layer=1,
                                vocab_size=11, attn_implementation="eager")
    if family == "deberta_v2":  # query_proj, key_proj, value_proj
        return tf.DebertaV2Config(vocab_size=11, hidden_size=8, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=8,
                                  max_position_embeddings=8, relative_attention=False)
    raise AssertionError(family)


MODELS = {"gpt2": "GPT2LMHeadModel", "gpt_neox": "GPTNeoXForCausalLM",
          "bloom": "BloomForCausalLM", "llama": "LlamaForCausalLM", "phi3": "Phi3ForCausalLM",
          "gpt_bigcode": "GPTBigCodeForCausalLM", "distilbert": "DistilBertForMaskedLM",
          "deberta_v2": "DebertaV2ForMaskedLM", "falcon": "FalconForCausalLM",
          "falcon_mq": "FalconForCausalLM", "falcon_new": "FalconForCausalLM",
          "codegen": "CodeGenForCausalLM"}


def build(family: str) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)  # transformers initializes from the global generator
        model = getattr(transformers, MODELS[family])(_config(family))
    return model.double().eval()


def record_states(family: str, model, ids, monkeypatch) -> dict[str, torch.Tensor]:
    """Run the model and return the query, key and value states of its attention layer,
    each ``(batch, heads, tokens, head width)``, as the layer computed them."""
    seen: dict[str, torch.Tensor] = {}
    if family == "bloom":
        cls = transformers.models.bloom.modeling_bloom.BloomAttention
        reshape = cls._reshape

        def spy(self, fused):
            q, k, v = reshape(self, fused)
            seen.update(q=q.detach().clone(), k=k.detach().clone(), v=v.detach().clone())
            return q, k, v

        monkeypatch.setattr(cls, "_reshape", spy)
    elif family == "deberta_v2":  # its own attention: Q, K, V go through one reshaping
        cls = transformers.models.deberta_v2.modeling_deberta_v2.DisentangledSelfAttention
        heads_first = cls.transpose_for_scores

        def spy(self, x, heads):
            out = heads_first(self, x, heads)
            if len(seen) < 3:  # query, key, value, in that order
                seen["qkv"[len(seen)]] = out.detach().clone().view(
                    x.shape[0], heads, x.shape[1], -1)
            return out

        monkeypatch.setattr(cls, "transpose_for_scores", spy)
    else:
        source = family.partition("_")[0] if family.startswith("falcon") else family
        module = importlib.import_module(f"transformers.models.{source}.modeling_{source}")
        attend = module.eager_attention_forward

        def spy(mod, query, key, value, *args, **kwargs):
            seen.update(q=query.detach().clone(), k=key.detach().clone(),
                        v=value.detach().clone())
            return attend(mod, query, key, value, *args, **kwargs)

        monkeypatch.setattr(module, "eager_attention_forward", spy)
    with torch.no_grad():
        model(input_ids=ids)
    monkeypatch.undo()
    assert set(seen) == {"q", "k", "v"}, "the attention function was not reached"
    return seen


def changed_heads(before, after) -> set[tuple[str, int]]:
    return {(part, h) for part in "qkv" for h in range(before[part].shape[1])
            if not torch.equal(before[part][:, h], after[part][:, h])}


def claimed_heads(name: str, param: str, part, states) -> set[tuple[str, int]]:
    """What a block's name says it holds: ``<param>[.<part>][.head<h>]`` (``part``: the
    parameter's :class:`~nets.engine.roles.AttentionPart`)."""
    rest = name[len(param):].lstrip(".").split(".") if name != param else []
    label = rest.pop(0) if rest and rest[0] in "qkv" else part.parts[0]
    if rest:
        return {(label, int(rest[0].removeprefix("head")))}
    return {(label, h) for h in range(states[label].shape[1])}


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("split", ["qkv", "heads"])
def test_each_block_moves_exactly_the_part_and_head_it_names(family, split, monkeypatch):
    model = build(family)
    ids = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(1))
    before = record_states(family, model, ids, monkeypatch)
    parts = nets.attention_parts(model)
    assert {lab for part in parts.values() for lab in part.parts} == {"q", "k", "v"}, family
    blocks = nets.role_blocks(model, None, split=split)
    resolved = {b.name: b for b in resolve_blocks(model, blocks)}
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(2)
    checked = 0
    for name, block in resolved.items():
        param = block.pieces[0].param
        if param not in parts:
            continue
        with torch.no_grad():
            saved = params[param].detach().clone()
            for piece in block.pieces:
                view = params[param][piece.index] if piece.index else params[param]
                view.add_(torch.randn(view.shape, generator=g, dtype=view.dtype))
        after = record_states(family, model, ids, monkeypatch)
        with torch.no_grad():
            params[param].copy_(saved)
        assert changed_heads(before, after) == claimed_heads(name, param, parts[param],
                                                                  before), name
        checked += 1
    heads_q = before["q"].shape[1]
    if split == "heads":  # every query and key head has a weight block of its own
        assert checked >= heads_q + before["k"].shape[1] + 1, (family, checked)
    assert checked >= 3


def test_grouped_query_heads_are_counted_per_part():
    """Llama with 4 query and 2 key/value heads: 4 Q head blocks and 2 K head blocks, each
    of one head's rows."""
    model = build("llama")
    blocks = nets.role_blocks(model, ["weight"], split="heads")
    q = [b for b in blocks if ".q_proj." in b]
    k = [b for b in blocks if ".k_proj." in b]
    assert len(q) == 4 and len(k) == 2
    width = model.config.hidden_size // model.config.num_attention_heads
    assert blocks[k[1]][1][0] == slice(width, 2 * width)


def test_per_head_fused_q_block_is_one_piece_per_head():
    model = build("gpt_neox")
    blocks = nets.role_blocks(model, None, split="qkv")
    name = "gpt_neox.layers.0.attention.query_key_value.weight"
    q = blocks[f"{name}.q"]
    assert isinstance(q, list) and len(q) == 2  # two heads, each [q | k | v] of width 4
    assert [piece[1][0] for piece in q] == [slice(0, 4), slice(12, 16)]


def test_codegens_shards_hold_query_value_and_key_heads_in_turn():
    """8 heads of width 2 in 4 shards: shard ``s`` holds rows ``[12 s, 12 s + 12)``, its two
    query heads, then their value heads, then their key heads."""
    model = build("codegen")
    part = nets.attention_parts(model)["transformer.h.0.attn.qkv_proj.weight"]
    assert (part.layout, part.shards, part.part_heads("q"), part.part_heads("k")) == \
        ("sharded", 4, 8, 8)
    assert part.rows("q", 3) == [(14, 16)] and part.rows("v", 0) == [(4, 6)]
    assert part.rows("k", 7) == [(46, 48)]
    assert sorted(r for lab in "qkv" for r in part.rows(lab)) == [(i, i + 2)
                                                                 for i in range(0, 48, 2)]


def test_an_unknown_fused_layout_is_refused_with_the_fix(monkeypatch):
    """A fused projection whose class nets does not know the order of (here GPT-NeoX's,
    declared unknown): splitting it is refused, naming the class and the fix, and
    split='params' runs."""
    monkeypatch.setitem(nets.FUSED_LAYOUTS, "GPTNeoXAttention", "unknown")
    model = build("gpt_neox")
    for split in ("qkv", "heads"):
        with pytest.raises(ValueError, match=r"GPTNeoXAttention.*split='params'.*"
                                             r"split_parameter"):
            nets.role_blocks(model, None, split=split)
    assert "gpt_neox.layers.0.attention.query_key_value.weight" in nets.role_blocks(model)


def test_a_sharded_layout_without_a_shard_count_is_unknown(monkeypatch):
    model = build("codegen")
    del model.transformer.h[0].attn.mp_num
    part = nets.attention_parts(model)["transformer.h.0.attn.qkv_proj.weight"]
    assert part.layout == "unknown" and part.shards is None


@pytest.mark.parametrize("family, layout", [("falcon", "per-head"), ("falcon_mq", "stacked"),
                                            ("falcon_new", "grouped")])
def test_falcons_layout_follows_its_config(family, layout):
    """Falcon with 4 query heads of width 2: per head (3 rows of 2 per head), multi-query
    (all Q rows, then one K and one V head) and grouped (2 groups: 2 query heads, their key,
    their value)."""
    parts = nets.attention_parts(build(family))
    (part,) = [p for n, p in parts.items() if n.endswith("query_key_value.weight")]
    assert part.layout == layout
    rows = {lab: part.rows(lab) for lab in "qkv"}
    expected = {"falcon": {"q": [(0, 2), (6, 8), (12, 14), (18, 20)],
                           "k": [(2, 4), (8, 10), (14, 16), (20, 22)],
                           "v": [(4, 6), (10, 12), (16, 18), (22, 24)]},
                "falcon_mq": {"q": [(0, 8)], "k": [(8, 10)], "v": [(10, 12)]},
                "falcon_new": {"q": [(0, 2), (2, 4), (8, 10), (10, 12)],
                               "k": [(4, 6), (12, 14)], "v": [(6, 8), (14, 16)]}}[family]
    if family == "falcon_mq":
        assert rows == expected and part.part_heads("k") == 1
    else:
        assert [r for lab in "qkv" for r in rows[lab]] == [r for lab in "qkv"
                                                          for r in expected[lab]]
    if family == "falcon_new":
        assert (part.part_heads("q"), part.part_heads("k")) == (4, 2)
        assert part.rows("q", 2) == [(8, 10)] and part.rows("v", 1) == [(14, 16)]


def test_a_layout_rule_returning_an_unknown_name_is_named(monkeypatch):
    monkeypatch.setitem(nets.FUSED_LAYOUTS, "FalconAttention", lambda attention: "diagonal")
    with pytest.raises(ValueError, match=r"FUSED_LAYOUTS\['FalconAttention'\] returned "
                                         r"'diagonal'.*'grouped'"):
        nets.attention_parts(build("falcon_new"))


def test_an_unknown_attention_class_with_a_3e_projection_is_refused():
    """A fused projection of a class and name nets does not know is not split in thirds by
    guess (GPT-NeoX's per-head rows would have been labelled Q, K, V that way)."""

    class MyAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.num_heads = 2
            self.mixed = torch.nn.Linear(4, 12)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = MyAttention()

    with pytest.raises(ValueError, match=r"MyAttention.*does not know"):
        nets.role_blocks(Net(), None, split="qkv")
    nets.FUSED_LAYOUTS["MyAttention"] = "per-head"  # the user says how its rows are laid out
    try:
        blocks = nets.role_blocks(Net(), None, split="heads")
    finally:
        del nets.FUSED_LAYOUTS["MyAttention"]
    assert blocks["attn.mixed.weight.k.head1"] == ("attn.mixed.weight", (slice(8, 10),))
    np.testing.assert_equal(sorted(blocks), sorted([
        "attn.mixed.weight.q.head0", "attn.mixed.weight.q.head1", "attn.mixed.weight.k.head0",
        "attn.mixed.weight.k.head1", "attn.mixed.weight.v", "attn.mixed.bias.q",
        "attn.mixed.bias.k", "attn.mixed.bias.v"]))


def test_heads_without_a_head_count_or_dividing_width_are_refused():
    class SelfAttention(torch.nn.Module):
        def __init__(self, heads):
            super().__init__()
            if heads:
                self.num_heads = heads
            self.q = torch.nn.Linear(6, 6)
            self.k = torch.nn.Linear(6, 6)

    class Net(torch.nn.Module):
        def __init__(self, heads):
            super().__init__()
            self.attn = SelfAttention(heads)

    with pytest.raises(ValueError, match=r"does not say its head count.*split='qkv'"):
        nets.role_blocks(Net(None), None, split="heads")
    assert "attn.q.weight" in nets.role_blocks(Net(None), None, split="qkv")
    with pytest.raises(ValueError, match=r"6 Q rows, not a multiple of its head width or 4"):
        nets.role_blocks(Net(4), None, split="heads")
    blocks = nets.role_blocks(Net(3), None, split="heads")
    assert blocks["attn.k.weight.head2"] == ("attn.k.weight", (slice(4, 6),))


def test_an_attention_module_with_no_recognized_projection_warns():
    class CrossAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.num_heads = 2
            self.proj_a = torch.nn.Linear(4, 4)
            self.proj_b = torch.nn.Linear(4, 8)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = CrossAttention()

    with pytest.warns(UserWarning, match=r"'mix' \(CrossAttention\).*proj_a, proj_b.*whole"):
        blocks = nets.role_blocks(Net(), None, split="heads")
    assert blocks["mix.proj_a.weight"] == "mix.proj_a.weight"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nets.role_blocks(Net(), None, split="params")
        nets.role_blocks(build("llama"), None, split="heads")  # recognized: no warning
