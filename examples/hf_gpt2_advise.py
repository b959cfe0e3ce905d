"""Worked example: ``nets advise`` on a Hugging Face GPT-2, exactly as ``transformers`` builds it.

The model comes from a small ``GPT2Config`` with random initialization (no download, no
``from_pretrained``), with its defaults: SDPA attention, the output head tied to the token
embedding, a ``ModelOutput`` result. The batches are ``datasets``-style dicts
(``{"input_ids": ..., "labels": ...}``; the entries other than ``labels`` are passed to the
model as keyword arguments). Nothing is rewritten for ``nets``:

* the engine runs attention on PyTorch's math kernel (the fused SDPA kernels have no second
  derivatives);
* the tied embedding/head weight is one parameter, so one Hessian block;
* ``model.eval()`` turns dropout off (in training mode ``nets`` refuses the model and names the
  dropout module).

Run it (needs the ``hf`` extra, ``pip install -e '.[hf]'``)::

    python examples/hf_gpt2_advise.py                            # the advice, as a table
    nets advise --model examples/hf_gpt2_advise.py:make_gpt2     # the same from the shell
    nets advise --model examples/hf_gpt2_advise.py:make_gpt2 --model-seed 1   # seed= keyword
    nets spectrum --model examples/hf_gpt2_advise.py:make_gpt2 --blocks heads --roles weight
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from nets.cli.app import main
from nets.zoo import VOCAB, char_lm_batches


def next_token_loss(out, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy of a ``CausalLMOutput``'s logits."""
    logits = out.logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def make_gpt2(seed: int = 0):
    """``(model, loss_fn, data)``: a 2-layer GPT-2 (width 16, 2 heads) and grammar batches."""
    config = GPT2Config(vocab_size=len(VOCAB), n_positions=16, n_embd=16, n_layer=2, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    with torch.random.fork_rng(devices=[]):  # transformers draws from the global generator:
        torch.manual_seed(seed)              # seed a forked copy, leave the caller's untouched
        model = GPT2LMHeadModel(config).eval()
    batches = char_lm_batches(n_seq=16, context=16, batch_size=8, seed=seed)
    data = [{"input_ids": x, "labels": y} for x, y in batches]
    return model, next_token_loss, data


if __name__ == "__main__":
    sys.exit(main(["advise", "--model", f"{__file__}:make_gpt2", *sys.argv[1:]]))
