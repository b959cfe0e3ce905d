"""Worked example: per-head Q and K Hessian blocks of a Hugging Face Llama, as ``transformers``
builds it.

The model comes from a small ``LlamaConfig`` with random initialization (no download, no
``from_pretrained``): RMSNorm, rotary positions, SwiGLU and grouped-query attention, 4 query
heads sharing 2 key/value heads. ``--blocks heads`` splits each Q projection into 4 blocks and
each K projection into 2, one per head: the engine reads the head counts from the attention
module and its config (Llama keeps only ``head_dim`` as an attribute), and under grouped-query
attention K has its own head count (docs/engine.md, "Q, K and V as each model lays them out").

Run it (needs the ``hf`` extra, ``pip install -e '.[hf]'``)::

    python examples/hf_llama_heads.py                          # the blockwise spectra, a table
    nets spectrum --model examples/hf_llama_heads.py:make_llama --blocks heads --roles weight
    nets js0 --model examples/hf_llama_heads.py:make_llama --blocks heads --roles weight

``LlamaRMSNorm`` computes in float32 whatever the model's dtype, so a float64 Llama's products
are exact to float32's round-off only (``tests/nets/test_hf.py`` shows the engine itself is
exact to float64's).
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from nets.cli.app import main
from nets.zoo import VOCAB, char_lm_batches


def next_token_loss(out, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy of a ``CausalLMOutput``'s logits."""
    logits = out.logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def make_llama(seed: int = 0):
    """``(model, loss_fn, data)``: a 2-layer Llama (width 16, 4 query and 2 key/value heads)
    and grammar batches."""
    config = LlamaConfig(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=16, bos_token_id=0, eos_token_id=0,
                         pad_token_id=None)
    with torch.random.fork_rng(devices=[]):  # transformers draws from the global generator:
        torch.manual_seed(seed)              # seed a forked copy, leave the caller's untouched
        model = LlamaForCausalLM(config).eval()
    batches = char_lm_batches(n_seq=16, context=16, batch_size=8, seed=seed)
    data = [{"input_ids": x, "labels": y} for x, y in batches]
    return model, next_token_loss, data


if __name__ == "__main__":
    sys.exit(main(["spectrum", "--model", f"{__file__}:make_llama", "--blocks", "heads",
                   "--roles", "weight", *sys.argv[1:]]))
