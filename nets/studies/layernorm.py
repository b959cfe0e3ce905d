r"""The output-change study of Liu et al. (2020) on Post-LN, Pre-LN and Admin Transformers.

The models are :func:`nets.zoo.ln_transformer.ln_transformer`.

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nets.engine.adapters import to_device
from nets.engine.distributed import local_device
from nets.studies.pools import first_batches
from nets.zoo.ln_transformer import VARIANTS, LNTransformer, ln_transformer

__all__ = ["GrowthFit", "OutputChange", "PerturbationStudy", "fit_growth", "output_change",
           "perturbation_study"]


@dataclass(frozen=True)
class OutputChange:
    """Mean squared output change of one model (averaged over draws)."""

    variant: str
    depth: int
    random: float
    adam_step: float


def output_change(model: LNTransformer, loss_fn: Callable, batch: tuple[torch.Tensor, torch.Tensor],
                  *, epsilon: float, lr: float,
                  draws: int, gen: torch.Generator) -> tuple[float, float]:
    """``(Δ_random, Δ_adam)`` for one model on one batch (see the module docstring).

    Args:
        model: The model (its parameters are restored afterwards).
        loss_fn: Its loss (for the Adam step).
        batch: ``(inputs, targets)``.
        epsilon: Scale of the random perturbation.
        lr: Adam's step size.
        draws: Random perturbations averaged.
        gen: Generator of the random perturbations (a CPU generator: the draws are moved to the
            model's device, so a seed gives the same perturbations on every device).
    """
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
                w.add_((torch.randn(w.shape, generator=gen) * epsilon).to(w.device, w.dtype))
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
    """``α`` from least squares of ``ln Δ`` on ``ln N``; ``R²`` of ``Δ ~ N`` and ``Δ ~ ln N``.

    Args:
        depths: The depths ``N``.
        values: The output changes ``Δ(N)`` (positive).
    """
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
        """Depths, perturbation sizes, output changes and growth fits as plain values."""
        return {"depths": list(self.depths), "epsilon": self.epsilon, "lr": self.lr,
                "random": {k: list(v) for k, v in self.random.items()},
                "adam_step": {k: list(v) for k, v in self.adam_step.items()},
                "fits_random": {k: vars(f) for k, f in self.fits_random.items()},
                "fits_adam": {k: vars(f) for k, f in self.fits_adam.items()}}


def perturbation_study(depths: Sequence[int] = (2, 4, 6, 8, 12, 16, 24), *,
                       variants: Sequence[str] = VARIANTS, seeds: Sequence[int] = (0, 1, 2),
                       epsilon: float = 1e-2, lr: float = 1e-3, draws: int = 3,
                       batch: tuple[torch.Tensor, torch.Tensor] | None = None,
                       progress: Callable[[str], None] | None = None,
                       device: str | torch.device = "cpu") -> PerturbationStudy:
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
        device: Where the models run (built and Admin-profiled on the CPU from their seeds,
            then moved; ``"auto"``, ``"cpu"``, ``"cuda:1"``, ...).
    """
    dev = local_device(device)
    depths = tuple(int(n) for n in depths)
    if len(depths) < 3 or min(depths) < 1:
        raise ValueError("need at least three positive depths")
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; choose from {VARIANTS}")
    if not (epsilon > 0 and lr > 0 and draws >= 1 and len(seeds) >= 1):
        raise ValueError("epsilon and lr must be positive, draws and seeds at least 1")
    batch = batch if batch is not None else first_batches("charlm")[0]
    rnd: dict[str, list[float]] = {v: [] for v in variants}
    adm: dict[str, list[float]] = {v: [] for v in variants}
    for v in variants:
        for n in depths:
            rs, ads = [], []
            for s in seeds:
                model, loss_fn = ln_transformer(v, n, seed=s, profile_batch=batch)
                gen = torch.Generator().manual_seed(10_000 + 97 * int(s) + n)
                r, a = output_change(model.to(dev), loss_fn, to_device(batch, dev),
                                     epsilon=epsilon, lr=lr, draws=draws, gen=gen)
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
