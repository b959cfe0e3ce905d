"""More Hugging Face architectures as users have them, each against an independent
double-backward Hessian (:func:`tests.nets.reference_checks.reference_hessian`): the dense
Hessian and every product mode's block products, in float64, tiny configs, random
initialization.

Each family brings something the engine must get right: ALBERT shares one layer's parameters
across depth; FNet mixes tokens with a Fourier transform and ties its padded word embedding to
the masked-LM decoder (the padding row trains through the decoder only); DeBERTa-v2 has
disentangled relative attention; BART and Whisper are encoder-decoders (Whisper from
convolved audio features); ConvNeXt has channels-first LayerNorms and depthwise convolutions;
Mamba's selective scan runs its reference PyTorch path and computes part of it in float32;
Mixtral routes each token to 2 of 3 experts.
"""

from __future__ import annotations

import pytest
import torch

from .reference_checks import assert_products_match, reference_hessian
from .test_hf import _cls_loss, _lm_loss

transformers = pytest.importorskip("transformers")


def _lm_batches(ids: torch.Tensor, **extra: torch.Tensor) -> list:
    """Two batches (2 and 1 sequences) of a causal or masked LM predicting ``ids``."""
    return [({"input_ids": ids[i], **{k: v[i] for k, v in extra.items()}}, ids[i])
            for i in (slice(0, 2), slice(2, 3))]


def _seq2seq_batches(inputs: dict, labels: torch.Tensor) -> list:
    return [({**{k: v[i] for k, v in inputs.items()}, "decoder_input_ids": labels[i]},
             labels[i]) for i in (slice(0, 2), slice(2, 3))]


#: Language models: ``(config class, model class, config)``, each predicting its own tokens.
LANGUAGE_MODELS = {
    "albert": ("AlbertConfig", "AlbertForMaskedLM", dict(
        embedding_size=3, hidden_size=4, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=6, max_position_embeddings=8, pad_token_id=0)),
    "fnet": ("FNetConfig", "FNetForMaskedLM", dict(
        hidden_size=4, num_hidden_layers=1, intermediate_size=6, max_position_embeddings=8,
        type_vocab_size=1, pad_token_id=0)),
    "deberta_v2": ("DebertaV2Config", "DebertaV2ForMaskedLM", dict(
        hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=6,
        max_position_embeddings=8, pad_token_id=0, relative_attention=True, position_buckets=4,
        max_relative_positions=4, pos_att_type=["p2c", "c2p"])),
    "mamba": ("MambaConfig", "MambaForCausalLM", dict(
        hidden_size=4, state_size=2, num_hidden_layers=1, expand=2, conv_kernel=2,
        pad_token_id=0)),
    # top-2 of 3 experts per token; Hugging Face's default experts kernel (grouped_mm) takes
    # no float64, so the model runs its eager experts, as a float64 user's must
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(
        hidden_size=4, intermediate_size=6, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, num_local_experts=3, num_experts_per_tok=2,
        max_position_embeddings=8, pad_token_id=None, bos_token_id=0, eos_token_id=0,
        experts_implementation="eager")),
}


def _language_model(name: str, seed: int):
    config, model, kwargs = LANGUAGE_MODELS[name]
    built = getattr(transformers, model)(getattr(transformers, config)(vocab_size=7, **kwargs))
    ids = torch.randint(1, 7, (3, 5), generator=torch.Generator().manual_seed(seed))
    return built, _lm_loss, _lm_batches(ids)


def bart():
    cfg = transformers.BartConfig(vocab_size=7, d_model=4, encoder_layers=1, decoder_layers=1,
                                  encoder_attention_heads=2, decoder_attention_heads=2,
                                  encoder_ffn_dim=6, decoder_ffn_dim=6,
                                  max_position_embeddings=8, pad_token_id=0, bos_token_id=1,
                                  eos_token_id=2, decoder_start_token_id=2)
    model = transformers.BartForConditionalGeneration(cfg)
    g = torch.Generator().manual_seed(4)
    ids, labels = torch.randint(3, 7, (3, 5), generator=g), torch.randint(3, 7, (3, 4), generator=g)
    return model, _lm_loss, _seq2seq_batches({"input_ids": ids}, labels)


def whisper():
    cfg = transformers.WhisperConfig(vocab_size=7, num_mel_bins=2, d_model=4, encoder_layers=1,
                                     decoder_layers=1, encoder_attention_heads=2,
                                     decoder_attention_heads=2, encoder_ffn_dim=6,
                                     decoder_ffn_dim=6, max_source_positions=4,
                                     max_target_positions=6, pad_token_id=0, bos_token_id=1,
                                     eos_token_id=2, decoder_start_token_id=1)
    model = transformers.WhisperForConditionalGeneration(cfg)
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(3, 2, 8, generator=g)
    labels = torch.randint(3, 7, (3, 4), generator=g)
    return model, _lm_loss, _seq2seq_batches({"input_features": feats}, labels)


def convnext():
    cfg = transformers.ConvNextConfig(num_channels=1, num_stages=2, hidden_sizes=[2, 3],
                                      depths=[1, 1], patch_size=2, num_labels=3, image_size=8)
    model = transformers.ConvNextForImageClassification(cfg)
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(3, 1, 8, 8, generator=g), torch.randint(0, 3, (3,), generator=g)
    return model, _cls_loss, [({"pixel_values": x}, y)]


FAMILIES = {**{name: (lambda name=name, seed=seed: _language_model(name, seed))
               for seed, name in enumerate(LANGUAGE_MODELS, start=1)},
            "bart": bart, "whisper": whisper, "convnext": convnext}
#: Agreement with the reference relative to its largest entry; Mamba computes part of its
#: scan in float32, Mixtral its router's softmax (the operator reads it off the graph:
#: ``compute_dtype``).
RTOL = {"mamba": 1e-6, "mixtral": 1e-6}


def _double(batches: list) -> list:
    return [({k: (v.double() if v.is_floating_point() else v) for k, v in x.items()}, y)
            for x, y in batches]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    with torch.random.fork_rng():
        torch.manual_seed(0)  # transformers initializes from the global generator
        model, loss_fn, data = FAMILIES[request.param]()
    model = model.double().eval()
    data = _double(data)
    return request.param, model, loss_fn, data, reference_hessian(model, loss_fn, data)


@pytest.mark.filterwarnings("ignore:the Hessian-vector products are asymmetric")
def test_dense_hessian_and_every_mode_match_double_backward(family):
    name, model, loss_fn, data, ref = family
    ops = assert_products_match(model, loss_fn, data, ref, rtol=RTOL.get(name, 1e-10), seed=8,
                                modes=("forward", "reverse-block", "reverse-bundle"), label=name)
    want = "float32" if name in RTOL else "float64"
    assert all(op.info()["compute_dtype"] == want for op in ops), name


#: Language models whose forward applies a custom ``torch.autograd.Function`` whose backward is
#: written in differentiable operations: BLOOM's tanh-approximated GELU, RecurrentGemma's
#: square root with a clipped gradient (unclipped at these weights). Old-style Functions (no
#: ``setup_context``, no ``jvp``): the double-backward modes only.
CUSTOM_FUNCTION_MODELS = {
    "bloom": ("BloomConfig", "BloomForCausalLM", dict(hidden_size=4, n_layer=1, n_head=2)),
    "recurrent_gemma": ("RecurrentGemmaConfig", "RecurrentGemmaForCausalLM", dict(
        hidden_size=4, intermediate_size=6, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, lru_width=4, attention_window_size=4, conv1d_width=2,
        block_types=["recurrent", "attention"], pad_token_id=0)),
}


@pytest.mark.parametrize("name", sorted(CUSTOM_FUNCTION_MODELS))
def test_custom_functions_pass_the_second_derivative_check(name):
    """The operator finds the model's custom Function, checks one product against central
    differences of the gradient (:mod:`nets.engine.second_derivatives`) and finds them in
    agreement; the products equal the independent double-backward Hessian (both compute
    part of the model in float32)."""
    config, cls, kwargs = CUSTOM_FUNCTION_MODELS[name]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = getattr(transformers, cls)(getattr(transformers, config)(vocab_size=7, **kwargs))
    model = model.double().eval()
    ids = torch.randint(1, 7, (3, 5), generator=torch.Generator().manual_seed(9))
    data = _lm_batches(ids)
    ops = assert_products_match(model, _lm_loss, data, reference_hessian(model, _lm_loss, data),
                                rtol=1e-6, modes=("reverse-block",), label=name)
    check = ops[0].info()["derivative_check"]
    assert check["verdict"] == "agrees", check
    assert len(check["functions"]) == 1 and name.split("_")[-1] in check["functions"][0].lower()
