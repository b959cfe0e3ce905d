"""The problems the spectra benchmarks measure on: a model, its loss and its data, by name.

``load(name, device)`` gives ``(model, loss_fn, data)`` with ``data`` a list of
``(inputs, targets)`` batches, every tensor on ``device``:

* ``mlp-xs``: a 3 → 4 → 3 tanh MLP in float64 (31 parameters, two batches of six points),
  the smoke grid's: 31 Lanczos steps span its whole space, so every method's largest Ritz
  value is the exact largest eigenvalue.
* ``gpt``: the zoo's GPT (``nets.zoo.models.load("gpt", seed=0)``).
* ``gpt2-s``, ``gpt2-m``: a Hugging Face ``GPT2LMHeadModel`` built from a small config
  (:data:`HF_SIZES`, random weights, no download, dropout off) as ``ids -> next-token
  logits``, two batches of 4 × 32 random tokens, next-token cross-entropy.
* ``gpt-gpu``: the GPT-2-small-sized rung of the ``gpu`` ladder profile
  (``nets.studies.gpucheck.gpt_problem``), ``make gpu-check``'s model.
"""

from __future__ import annotations

import torch

from nets.studies.gpucheck import gpt_problem
from nets.zoo import models as zoo

__all__ = ["HF_SIZES", "MODELS", "load"]

#: The Hugging Face GPT-2 configs, by model name (``GPT2Config`` keyword arguments).
HF_SIZES = {"gpt2-s": dict(n_layer=2, n_embd=32, n_head=2, vocab_size=128, n_positions=32),
            "gpt2-m": dict(n_layer=4, n_embd=64, n_head=4, vocab_size=256, n_positions=32)}

#: The names :func:`load` knows.
MODELS = ("mlp-xs", "gpt", *HF_SIZES, "gpt-gpu")


class _LMHead(torch.nn.Module):
    """A Hugging Face causal LM as ``ids -> flattened next-token logits`` (a plain tensor)."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = self.lm(input_ids=ids).logits
        return logits[:, :-1].reshape(-1, logits.shape[-1])


def load(name: str, device: str | torch.device = "cpu"):
    """The problem ``name`` (see the module docstring), on ``device``.

    Args:
        name: One of :data:`MODELS`.
        device: Where the model and the data go.

    Returns:
        ``(model, loss_fn, data)``, with ``data`` a list of ``(inputs, targets)`` tensors and
        ``loss_fn(model(inputs), targets)`` the batch's mean loss.

    Raises:
        ValueError: An unknown ``name``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown benchmark model {name!r}: expected one of "
                         f"{', '.join(MODELS)}")
    dev = torch.device(device)
    model, loss_fn, data = _load(name)
    return model.to(dev), loss_fn, [(x.to(dev), y.to(dev)) for x, y in data]


def _load(name: str):
    """:func:`load` on the CPU."""
    if name == "gpt-gpu":  # make gpu-check's model: the GPT-2-small-sized rung
        return gpt_problem()
    if name == "mlp-xs":  # 3 -> 4 -> 3, tanh: 31 parameters, float64
        g = torch.Generator().manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                    torch.nn.Linear(4, 3)).double()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        x = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (2, 6), generator=g)
        return model, torch.nn.functional.cross_entropy, list(zip(x, y, strict=True))
    if name == "gpt":
        model, loss_fn, data = zoo.load("gpt", seed=0)
        return model, loss_fn, data
    from transformers import GPT2Config, GPT2LMHeadModel  # the optional `bench`/`hf` extra

    cfg = GPT2Config(**HF_SIZES[name], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    with torch.random.fork_rng(devices=[]):  # the weights' seed, the caller's state untouched
        torch.manual_seed(0)
        model = _LMHead(GPT2LMHeadModel(cfg)).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (2, 4, 32), generator=g)
    data = [(x, x[:, 1:].reshape(-1)) for x in ids]
    return model, torch.nn.functional.cross_entropy, data
