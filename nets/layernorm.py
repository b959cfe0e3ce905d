r"""Post-LN, Pre-LN and Admin Transformers, and the output-change study of Liu et al. (2020).

The model is a character LM (vocabulary of :data:`nets.data.VOCAB`, context 32, width
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

**Output change** (their Figure 4): for ``F(x, W)`` the last hidden states (after the final LN
for Pre-LN), ``Δ = mean over elements of (F(x, W) − F(x, W + δ))²`` with

* random perturbation: ``δ = ε · N(0, I)`` on every weight matrix of the ``N`` layers;
* one optimizer step: ``δ`` = the first update of Adam (``lr = η``) on the batch's loss
  (all parameters).

Fitting ``Δ(N) ≈ a N^α`` on a depth sweep gives a growth exponent ``α`` (the paper: ``O(N)``,
``α ≈ 1``, for Post-LN; ``O(log N)``, so a small apparent ``α``, for Pre-LN); we also report the
``R²`` of the fits ``Δ = a + bN`` and ``Δ = a + b ln N``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import VOCAB
from .zoo import attention

__all__ = ["VARIANTS", "GrowthFit", "LNTransformer", "OutputChange", "PerturbationStudy",
           "admin_profile", "fit_growth", "ln_transformer", "output_change",
           "perturbation_study"]

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
        """``F(x, W)``: the last hidden states ``(b, t, d)``."""
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
        return self.head(self.hidden(idx))

    def layer_weights(self) -> list[nn.Parameter]:
        """The weight matrices of the residual sublayers (what random perturbations touch)."""
        return [p for n, p in self.sublayers.named_parameters() if n.endswith("weight")]


def admin_profile(model: LNTransformer, batch: torch.Tensor) -> np.ndarray:
    """Admin's profiling pass: set ``ω_i = sqrt(v_0 + Σ_{j<i} v_j)`` from one batch.

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


def ln_transformer(variant: str, depth: int, *, seed: int = 0, profile_batch=None,
                   d: int = 32) -> tuple[LNTransformer, object]:
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
    return model.eval(), _token_ce


def _token_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@dataclass(frozen=True)
class OutputChange:
    """Mean squared output change of one model (averaged over draws)."""

    variant: str
    depth: int
    random: float
    adam_step: float


def output_change(model: LNTransformer, loss_fn, batch, *, epsilon: float, lr: float,
                  draws: int, gen: torch.Generator) -> tuple[float, float]:
    """``(Δ_random, Δ_adam)`` for one model on one batch (see the module docstring)."""
    x, y = batch
    params = dict(model.named_parameters())
    base = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        f0 = model.hidden(x)
    weights = model.layer_weights()
    rand = []
    for _ in range(draws):
        with torch.no_grad():
            for w in weights:
                w.add_(torch.randn(w.shape, generator=gen) * epsilon)
            rand.append(float(((model.hidden(x) - f0) ** 2).mean()))
            for n, p in params.items():
                p.copy_(base[n])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()
    with torch.no_grad():
        adam = float(((model.hidden(x) - f0) ** 2).mean())
        for n, p in params.items():
            p.copy_(base[n])
    model.zero_grad(set_to_none=True)
    return float(np.mean(rand)), adam


@dataclass(frozen=True)
class GrowthFit:
    """Fits of ``Δ(N)``: power-law exponent and the ``R²`` of linear and logarithmic fits."""

    exponent: float
    r2_linear: float
    r2_log: float


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    a = np.vstack([np.ones_like(x), x]).T
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    tot = ((y - y.mean()) ** 2).sum()
    return float(1 - (res ** 2).sum() / tot) if tot > 0 else 1.0


def fit_growth(depths: Sequence[int], values: Sequence[float]) -> GrowthFit:
    """``α`` from least squares of ``ln Δ`` on ``ln N``; ``R²`` of ``Δ ~ N`` and ``Δ ~ ln N``."""
    n = np.asarray(depths, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if n.size < 3 or n.size != v.size:
        raise ValueError("need at least three depths with one value each")
    if not (np.all(v > 0) and np.all(np.isfinite(v))):
        raise ValueError("output changes must be positive and finite to fit their growth")
    alpha = float(np.polyfit(np.log(n), np.log(v), 1)[0])
    return GrowthFit(alpha, _r2(n, v), _r2(np.log(n), v))


@dataclass(frozen=True)
class PerturbationStudy:
    """Output change against depth for each variant.

    Attributes:
        depths: The depths ``N``.
        epsilon: Random-perturbation scale.
        lr: Adam learning rate of the one-step update.
        random: ``{variant: (Δ at each depth)}`` (mean over model seeds and draws).
        adam_step: Same for one Adam step.
        fits_random: ``{variant: GrowthFit}``.
        fits_adam: ``{variant: GrowthFit}``.
    """

    depths: tuple[int, ...]
    epsilon: float
    lr: float
    random: dict = field(repr=False)
    adam_step: dict = field(repr=False)
    fits_random: dict
    fits_adam: dict

    def to_dict(self) -> dict:
        return {"depths": list(self.depths), "epsilon": self.epsilon, "lr": self.lr,
                "random": {k: list(v) for k, v in self.random.items()},
                "adam_step": {k: list(v) for k, v in self.adam_step.items()},
                "fits_random": {k: vars(f) for k, f in self.fits_random.items()},
                "fits_adam": {k: vars(f) for k, f in self.fits_adam.items()}}


def perturbation_study(depths: Sequence[int] = (2, 4, 6, 8, 12, 16, 24), *,
                       variants: Sequence[str] = VARIANTS, seeds: Sequence[int] = (0, 1, 2),
                       epsilon: float = 1e-2, lr: float = 1e-3, draws: int = 3,
                       batch=None, progress=None) -> PerturbationStudy:
    """Output change under a random perturbation and one Adam step, for each depth.

    Args:
        depths: Depths ``N`` (at least three).
        variants: Subset of :data:`VARIANTS`.
        seeds: Model seeds averaged over.
        epsilon: Random-perturbation scale ``ε``.
        lr: Adam learning rate ``η`` of the one-step update.
        draws: Random perturbations per model.
        batch: ``(inputs, targets)``; default the first grammar-corpus batch (16 × 32).
        progress: Called with a note after each model.
    """
    from .tasks import _first_batches

    depths = tuple(int(n) for n in depths)
    if len(depths) < 3 or min(depths) < 1:
        raise ValueError("need at least three positive depths")
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; choose from {VARIANTS}")
    if not (epsilon > 0 and lr > 0 and draws >= 1 and len(seeds) >= 1):
        raise ValueError("epsilon and lr must be positive, draws and seeds at least 1")
    batch = batch if batch is not None else _first_batches("charlm")[0]
    rnd: dict[str, list[float]] = {v: [] for v in variants}
    adm: dict[str, list[float]] = {v: [] for v in variants}
    for v in variants:
        for n in depths:
            rs, ads = [], []
            for s in seeds:
                model, loss_fn = ln_transformer(v, n, seed=s, profile_batch=batch)
                gen = torch.Generator().manual_seed(10_000 + 97 * int(s) + n)
                r, a = output_change(model, loss_fn, batch, epsilon=epsilon, lr=lr,
                                     draws=draws, gen=gen)
                rs.append(r)
                ads.append(a)
            rnd[v].append(float(np.mean(rs)))
            adm[v].append(float(np.mean(ads)))
            if progress is not None:
                progress(f"{v} N={n}")
    return PerturbationStudy(depths, float(epsilon), float(lr),
                             {k: tuple(x) for k, x in rnd.items()},
                             {k: tuple(x) for k, x in adm.items()},
                             {k: fit_growth(depths, x) for k, x in rnd.items()},
                             {k: fit_growth(depths, x) for k, x in adm.items()})
