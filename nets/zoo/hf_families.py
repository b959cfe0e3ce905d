r"""Hugging Face ``transformers`` models as ladder families, built from configs (random init).

Beside the zoo's own architectures (:mod:`nets.zoo.families`), the ladder has four families
that are the ``transformers`` classes users have, at growing sizes:

=============  =================================  =================================================
family         model                              data (:mod:`nets.zoo.realdata`)
=============  =================================  =================================================
``hf-gpt2``    ``GPT2LMHeadModel``                Shakespeare words, next token
``hf-bert``    ``BertForMaskedLM``                Shakespeare words, 15% masked
``hf-vit``     ``ViTForImageClassification``      sklearn 8×8 digits, 2×2 patches, 1 channel
``hf-resnet``  ``ResNetForImageClassification``   sklearn 8×8 digits, basic blocks
=============  =================================  =================================================

Every model is built from a config with random initialization (``transformers``' own
``_init_weights``; never ``from_pretrained``, nothing is downloaded). The choices made for
the study, the same at every size:

* attention ``"eager"`` (``softmax(QKᵀ/√d)V`` in plain torch ops, the same function as the math
  SDPA kernel, with second derivatives on every device);
* every dropout probability 0 and the model in eval mode (batch norm uses its running
  statistics, the zoo's convention);
* ``hf-bert``: ``type_vocab_size=1`` (one segment) and ``pad_token_id=None`` (the windows have
  no padding, so no embedding row is frozen); the output heads of ``hf-gpt2`` and ``hf-bert``
  are tied to the word embedding, as ``transformers`` ties them (one parameter, one block);
* the loss receives the ``ModelOutput`` and takes its ``logits``: mean token cross-entropy
  (``-100`` ignored) for text, mean cross-entropy for images.

``transformers`` initializes from torch's global generator; :func:`hf_build` seeds a
*forked* copy of it (:func:`torch.random.fork_rng`), so the model depends on ``seed`` alone
and the caller's generator state is left as it was.

``transformers`` is optional (``pip install '.[hf]'``); without it these families raise
:class:`MissingExtraError` naming that command, and the zoo families are unaffected.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from nets.zoo.models import token_cross_entropy

__all__ = ["HF_FAMILIES", "HF_TEXT_FAMILIES", "MissingExtraError", "hf_build",
           "hf_parameter_count", "require_transformers"]

HF_FAMILIES = ("hf-gpt2", "hf-bert", "hf-vit", "hf-resnet")
HF_TEXT_FAMILIES = ("hf-gpt2", "hf-bert")
_IMAGE_SIZE, _CLASSES = 8, 10


class MissingExtraError(ImportError):
    """An optional dependency (an extra of the package) is not installed."""


def require_transformers() -> ModuleType:
    """The ``transformers`` module, or a clear error saying how to install it.

    Returns:
        The imported ``transformers`` module.

    Raises:
        MissingExtraError: ``transformers`` is not installed (install ``pip install '.[hf]'``).
    """
    try:
        return importlib.import_module("transformers")
    except ImportError as e:
        raise MissingExtraError("the Hugging Face families (hf-gpt2, hf-bert, hf-vit, "
                                "hf-resnet) need the transformers package: "
                                "pip install '.[hf]'") from e


def _config(family: str, cfg: Mapping[str, object], vocab: int, context: int):
    tf = require_transformers()
    no_dropout = {"attn_implementation": "eager"}
    if family == "hf-gpt2":
        return tf.GPT2Config(vocab_size=vocab, n_positions=context, n_embd=cfg["d"],
                             n_layer=cfg["L"], n_head=cfg["h"], resid_pdrop=0.0,
                             embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=vocab - 1,
                             eos_token_id=vocab - 1, **no_dropout)
    if family == "hf-bert":
        d = cfg["d"]
        return tf.BertConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=cfg["L"],
                             num_attention_heads=cfg["h"], intermediate_size=4 * d,
                             max_position_embeddings=context, type_vocab_size=1,
                             pad_token_id=None, hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0, **no_dropout)
    if family == "hf-vit":
        d = cfg["d"]
        return tf.ViTConfig(image_size=_IMAGE_SIZE, patch_size=2, num_channels=1, hidden_size=d,
                            num_hidden_layers=cfg["L"], num_attention_heads=cfg["h"],
                            intermediate_size=4 * d, num_labels=_CLASSES,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                            **no_dropout)
    if family == "hf-resnet":
        return tf.ResNetConfig(num_channels=1, embedding_size=cfg["e"],
                               hidden_sizes=list(cfg["w"]), depths=list(cfg["n"]),
                               layer_type="basic", num_labels=_CLASSES)
    raise ValueError(f"unknown Hugging Face family {family!r}; choose from "
                     f"{', '.join(HF_FAMILIES)}")


def _model_class(family: str) -> type:
    tf = require_transformers()
    return {"hf-gpt2": tf.GPT2LMHeadModel, "hf-bert": tf.BertForMaskedLM,
            "hf-vit": tf.ViTForImageClassification,
            "hf-resnet": tf.ResNetForImageClassification}[family]


def _text_loss(out, targets: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy of a ``ModelOutput``'s logits (``-100`` targets ignored)."""
    return token_cross_entropy(out.logits, targets)


def _image_loss(out, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of a ``ModelOutput``'s class logits."""
    return F.cross_entropy(out.logits, targets)


def hf_build(family: str, cfg: Mapping[str, object], *, vocab: int = 0, context: int = 0,
             seed: int = 0) -> tuple[nn.Module, Callable]:
    """A ``transformers`` model of ``family`` from its config, at the seeded initialization.

    Args:
        family: One of :data:`HF_FAMILIES`.
        cfg: Width/depth of the rung: ``d``, ``L``, ``h`` (text and ViT); ``e`` (stem width),
            ``w`` (stage widths), ``n`` (blocks per stage) for ResNet.
        vocab: Word vocabulary size (text families).
        context: Sequence length (text families).
        seed: Seed of ``transformers``' initialization (a forked global generator, see the
            module docstring).

    Returns:
        ``(model, loss_fn)`` on the CPU in float32, in eval mode; ``loss_fn(output, targets)``
        takes the model's ``ModelOutput``.

    Raises:
        MissingExtraError: ``transformers`` is not installed.
        ValueError: an unknown family.
    """
    config = _config(family, cfg, vocab, context)
    cls = _model_class(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = cls(config)
    model.eval()
    return model, (_text_loss if family in HF_TEXT_FAMILIES else _image_loss)


def hf_parameter_count(family: str, cfg: Mapping[str, object], *, vocab: int = 0,
                       context: int = 0) -> int:
    """Number of parameters (tied weights once) of the model, built on the meta device.

    Args:
        family: One of :data:`HF_FAMILIES`.
        cfg: Width/depth of the rung (see :func:`hf_build`).
        vocab: Word vocabulary size (text families).
        context: Sequence length (text families).

    Returns:
        The parameter count.

    Raises:
        MissingExtraError: ``transformers`` is not installed.
    """
    config = _config(family, cfg, vocab, context)
    cls = _model_class(family)
    with torch.device("meta"):
        model = cls(config)
    return sum(p.numel() for p in model.parameters())
