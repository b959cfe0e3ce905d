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
from nets.zoo.factory import (
    is_factory,
    load_factory,
    load_model,
    model_blocks,
    resolve_family_size,
    resolve_model,
    seed_arguments,
)
from nets.zoo.families import (
    FAMILIES,
    LADDER_FAMILIES,
    LADDERS,
    Rung,
    build_rung,
    ladder,
    parameter_count,
    rung_data,
)
from nets.zoo.hf_families import (
    HF_FAMILIES,
    MissingExtraError,
    hf_build,
    hf_parameter_count,
    require_transformers,
)
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
from nets.zoo.realdata import (
    Vocabulary,
    data_dir,
    digits_split,
    install_shakespeare,
    shakespeare_text,
    tokenize,
    train_vocabulary,
    word_lm_arrays,
    word_lm_batches,
    zipf_exponent,
)
from nets.zoo.scaled_mlp import ScaledMLP, layer_scales, scaled_mlp

__all__ = [
    "DIALECT",
    "FAMILIES",
    "HF_FAMILIES",
    "LADDERS",
    "LADDER_FAMILIES",
    "MASK_ID",
    "MODELS",
    "PARTITIONS",
    "VARIANTS",
    "VOCAB",
    "LNTransformer",
    "MissingExtraError",
    "QuadraticModel",
    "Rung",
    "ScaledMLP",
    "Vocabulary",
    "admin_profile",
    "attention",
    "build_rung",
    "char_lm_batches",
    "data_dir",
    "dialect_lm_batches",
    "digits_split",
    "glyph_digits",
    "grammar_corpus",
    "hf_build",
    "hf_parameter_count",
    "install_shakespeare",
    "is_factory",
    "ladder",
    "layer_scales",
    "ln_transformer",
    "load",
    "load_factory",
    "load_model",
    "masked_lm_batches",
    "model_blocks",
    "parameter_count",
    "partition",
    "quadratic_problem",
    "require_transformers",
    "resolve_family_size",
    "resolve_model",
    "rung_data",
    "scaled_mlp",
    "seed_arguments",
    "shakespeare_text",
    "tiny_transformer",
    "token_cross_entropy",
    "tokenize",
    "train_vocabulary",
    "word_lm_arrays",
    "word_lm_batches",
    "zipf_exponent",
]
