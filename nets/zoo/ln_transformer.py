r"""Post-LN, Pre-LN and Admin Transformer character LMs (Liu et al. 2020), for the depth study.

The model is a character LM (vocabulary of :data:`nets.zoo.data.VOCAB`, context 32, width
``d = 32``, 4 heads, MLP 4d, causal math attention) with ``N`` layers = ``2N`` residual
sublayers ``f_i`` (attention, MLP, attention, …):

* **Post-LN**: ``x_i = LN(x_{i−1} + f_i(x_{i−1}))``.
* **Pre-LN**: ``x_i = x_{i−1} + f_i(LN(x_{i−1}))``, and a final LN.
* **Admin** (Liu et al. 2020, §4.3): Post-LN with a learnable per-channel scale on the
  shortcut, ``x_i = LN(x_{i−1} ⊙ ω_i + f_i(x_{i−1}))``. Profiling: with ``ω_i = 1``, one forward
  pass on one batch records ``v_i = Var[f_i(x_{i−1})]`` (over all elements); then

      ω_i = sqrt(v_0 + Σ_{j<i} v_j),   v_0 = Var[x_0] (the embedding output),

  which makes each sublayer's share of its LN input ``≈ v_i / Σ_{j≤i} v_j ≈ 1/i`` at
  initialization, as in Pre-LN. (The seed states ``ω_i = sqrt(Σ_{j<i} Var f_j)``; we count the
  embedding as the ``j = 0`` branch so that ``ω_1 > 0``.)

Initialization as in Liu et al.'s fairseq models: Xavier-normal linear weights
(``N(0, 2/(fan_in + fan_out))``), zero biases, unit LN gains, token and position embeddings
``N(0, 1/2)`` each (unit-variance input). All draws come from a ``torch.Generator``.
The output-change study on these models lives in :mod:`nets.studies.layernorm`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nets.zoo.data import VOCAB
from nets.zoo.models import attention, token_cross_entropy

__all__ = ["VARIANTS", "LNTransformer", "admin_profile", "ln_transformer"]

VARIANTS = ("postln", "preln", "admin")


class _Attn(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        return self.proj(attention(self.q(x), self.k(x), self.v(x), self.heads, True))


class _MLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class LNTransformer(nn.Module):
    """Character LM with ``depth`` layers in the Post-LN, Pre-LN or Admin arrangement."""

    def __init__(self, variant: str, depth: int, *, vocab: int = len(VOCAB), context: int = 32,
                 d: int = 32, heads: int = 4):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.variant, self.depth = variant, depth
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        subs: list[nn.Module] = []
        for _ in range(depth):
            subs += [_Attn(d, heads), _MLP(d)]
        self.sublayers = nn.ModuleList(subs)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in subs)
        self.ln_f = nn.LayerNorm(d) if variant == "preln" else None
        if variant == "admin":
            self.omega = nn.ParameterList(nn.Parameter(torch.ones(d)) for _ in subs)
        else:
            self.omega = None
        self.head = nn.Linear(d, vocab, bias=False)
        self._record: list[float] | None = None

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """``F(x, W)``: the last hidden states ``(b, t, d)``.

        Args:
            idx: ``(b, t)`` token ids.
        """
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        if self._record is not None:
            self._record.append(float(x.detach().var()))
        for i, (f, ln) in enumerate(zip(self.sublayers, self.norms, strict=True)):
            if self.variant == "preln":
                x = x + f(ln(x))
                continue
            y = f(x)
            if self._record is not None:
                self._record.append(float(y.detach().var()))
            x = ln(x * self.omega[i] + y) if self.omega is not None else ln(x + y)
        return self.ln_f(x) if self.ln_f is not None else x

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-character logits ``(b, t, vocab)`` of the token ids ``idx``.

        Args:
            idx: ``(b, t)`` token ids.
        """
        return self.head(self.hidden(idx))

    def layer_weights(self) -> list[nn.Parameter]:
        """The weight matrices of the residual sublayers (what random perturbations touch)."""
        return [p for n, p in self.sublayers.named_parameters() if n.endswith("weight")]


def admin_profile(model: LNTransformer, batch: torch.Tensor) -> np.ndarray:
    """Admin's profiling pass: set ``ω_i = sqrt(v_0 + Σ_{j<i} v_j)`` from one batch.

    Args:
        model: An ``admin`` model (its ``ω_i`` are set in place).
        batch: ``(b, t)`` token ids of the profiling batch.

    Returns:
        The recorded variances ``(v_0, v_1, …, v_{2N})``.
    """
    if model.variant != "admin":
        raise ValueError("admin_profile needs an 'admin' model")
    with torch.no_grad():
        for w in model.omega:
            w.fill_(1.0)
        model._record = []
        try:
            model.hidden(batch)
            v = np.asarray(model._record)
        finally:
            model._record = None
        cum = np.cumsum(v)  # cum[i-1] = v_0 + ... + v_{i-1}
        for i, w in enumerate(model.omega):
            w.fill_(float(math.sqrt(cum[i])))
    return v


def ln_transformer(variant: str, depth: int, *, seed: int = 0,
                   profile_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
                   d: int = 32) -> tuple[LNTransformer, Callable]:
    """``(model, loss_fn)`` at its seeded initialization (eval mode, float32).

    Args:
        variant: ``"postln"``, ``"preln"`` or ``"admin"``.
        depth: Number of layers ``N``.
        seed: Seed of the ``torch.Generator`` of the initialization.
        profile_batch: For Admin: ``(inputs, targets)`` or inputs of the profiling batch.
        d: Width.
    """
    model = LNTransformer(variant, depth, d=d)
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                fi, fo = m.weight.shape[1], m.weight.shape[0]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g)
                               * math.sqrt(2.0 / (fi + fo)))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(0.5))
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
    if variant == "admin":
        if profile_batch is None:
            raise ValueError("Admin initialization needs a profiling batch")
        x = profile_batch[0] if isinstance(profile_batch, tuple | list) else profile_batch
        admin_profile(model, x)
    return model.eval(), token_cross_entropy
