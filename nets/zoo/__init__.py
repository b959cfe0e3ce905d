"""The model zoo and its data: small CNNs, Transformers, MLPs and their batches, all generated
locally.

``from nets import zoo; model, loss_fn, data = zoo.load("gpt", seed=0)``.
"""

from nets.zoo.data import (
    DIALECT,
    MASK_ID,
    VOCAB,
    char_lm_batches,
    dialect_lm_batches,
    glyph_digits,
    grammar_corpus,
    masked_lm_batches,
)
from nets.zoo.factory import is_factory, load_factory, load_model, model_blocks, resolve_model
from nets.zoo.ln_transformer import VARIANTS, LNTransformer, admin_profile, ln_transformer
from nets.zoo.models import (
    MODELS,
    PARTITIONS,
    attention,
    load,
    partition,
    tiny_transformer,
    token_cross_entropy,
)
from nets.zoo.quadratic import QuadraticModel, quadratic_problem
from nets.zoo.scaled_mlp import ScaledMLP, layer_scales, scaled_mlp

__all__ = [
    "DIALECT",
    "MASK_ID",
    "MODELS",
    "PARTITIONS",
    "VARIANTS",
    "VOCAB",
    "LNTransformer",
    "QuadraticModel",
    "ScaledMLP",
    "admin_profile",
    "attention",
    "char_lm_batches",
    "dialect_lm_batches",
    "glyph_digits",
    "grammar_corpus",
    "is_factory",
    "layer_scales",
    "ln_transformer",
    "load",
    "load_factory",
    "load_model",
    "masked_lm_batches",
    "model_blocks",
    "partition",
    "quadratic_problem",
    "resolve_model",
    "scaled_mlp",
    "tiny_transformer",
    "token_cross_entropy",
]
