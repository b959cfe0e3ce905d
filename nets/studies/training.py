"""The training loop: SGD with momentum or Adam(W), fixed data order, loss curves, divergence.

One run trains a freshly built model on a fixed pool of samples ``(X, Y)`` for ``steps``
minibatch steps with a constant learning rate:

* **Data order** is fixed by ``data_seed`` alone: epoch ``e`` visits the pool in the order
  ``torch.randperm(n, generator=Generator().manual_seed(data_seed * 1_000_003 + e))``, cut
  into consecutive minibatches of ``batch_size`` (a short tail batch is dropped). SGD and Adam
  runs with the same ``data_seed`` and batch size therefore see identical minibatches.
* **Optimizers**: ``"sgd"`` is ``torch.optim.SGD(momentum=0.9)`` (heavy ball, no dampening);
  ``"adam"`` is ``torch.optim.AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0)`` (Adam; a
  positive ``weight_decay`` gives AdamW). No schedule, no clipping: the comparison is of the
  optimizers themselves.
* **Curves**: the minibatch loss at every step, and the loss on the whole pool (the training
  loss ``L``) at steps ``0, eval_every, 2·eval_every, …, steps``; with a ``heldout`` pool (samples
  of the same task never trained on) also the held-out loss at the same steps.
* **Divergence**: a run is stopped and marked diverged at the first step whose minibatch loss
  (or a pool loss) is non-finite or exceeds ``divergence_factor · L(w₀)``
  (``max(divergence_factor · L₀, L₀ + 10)``); non-finite values are never propagated into the
  result's final loss.

All randomness is explicit: the model is built by a factory from its seed (a
``torch.Generator`` inside, e.g. :func:`nets.zoo.models.load`), the data order from ``data_seed``.

**Inputs** as the engine takes them (:mod:`nets.engine.adapters`): a pool's inputs may be a
tensor, a tuple of tensors or a mapping of keyword tensors (Hugging Face style); the model is
called through :func:`nets.engine.adapters.forward` (math attention, the same function the
spectra differentiate) and the loss receives whatever the model returns (``ModelOutput``
included).

**Devices**: a run happens where the pool is (:meth:`Pool.to`); the factory's model is moved
there. The data order is drawn on the CPU (a CPU ``torch.Generator``) and its indices moved to
the pool's device, so a seed gives the same minibatches on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from nets.engine.adapters import forward, split_batch, to_device

__all__ = ["OPTIMIZERS", "Pool", "TrainConfig", "TrainResult", "batch_order", "make_optimizer",
           "pool_loss", "train"]

OPTIMIZERS = ("sgd", "adam")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _tensors(x: object) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, tuple | list):
        return [t for v in x for t in _tensors(v)]
    if isinstance(x, Mapping):
        return [t for v in x.values() for t in _tensors(v)]
    return []


def _take(x: object, index: torch.Tensor | slice) -> object:
    """Samples ``index`` of a tensor, or of every tensor inside tuples and mappings."""
    if isinstance(x, torch.Tensor):
        return x[index]
    if isinstance(x, tuple | list):
        return tuple(_take(v, index) for v in x)
    return {k: _take(v, index) for k, v in x.items()}


def _structure_ok(x: object) -> bool:
    if isinstance(x, torch.Tensor):
        return x.ndim >= 1
    if isinstance(x, tuple | list | Mapping):
        vals = list(x.values()) if isinstance(x, Mapping) else x
        return len(vals) > 0 and all(_structure_ok(v) for v in vals)
    return False


def _cat(parts: list) -> object:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, tuple | list):
        return tuple(_cat([p[i] for p in parts]) for i in range(len(first)))
    return {k: _cat([p[k] for p in parts]) for k in first}


@dataclass(frozen=True)
class Pool:
    """A training set held in memory: sample ``i`` is row ``i`` of every tensor.

    ``inputs`` is what the model takes (:mod:`nets.engine.adapters`): a tensor (one positional
    argument), a tuple of tensors (positional arguments) or a mapping of tensors (keyword
    arguments, e.g. ``{"input_ids": ..., "attention_mask": ...}``); ``targets`` a tensor (or a
    tuple/mapping of tensors) handed to the loss as it is. Every tensor has the samples on its
    first axis.

    Attributes:
        inputs: The model's inputs.
        targets: The loss's targets.
    """

    inputs: object
    targets: object

    def __post_init__(self) -> None:
        for label, x in (("inputs", self.inputs), ("targets", self.targets)):
            if not _structure_ok(x):
                raise TypeError(f"Pool {label} must be a tensor, or a tuple or mapping of "
                                f"tensors with the samples on their first axis; got "
                                f"{type(x).__name__}")
        if isinstance(self.inputs, list):
            object.__setattr__(self, "inputs", tuple(self.inputs))
        sizes = {int(t.shape[0]) for t in _tensors(self.inputs) + _tensors(self.targets)}
        if len(sizes) != 1 or min(sizes) < 1:
            raise ValueError(f"Pool needs as many inputs as targets (>= 1), got first-axis "
                             f"sizes {sorted(sizes)}")

    def __len__(self) -> int:
        return int(_tensors(self.inputs)[0].shape[0])

    @property
    def device(self) -> torch.device:
        """The device the samples are on (that of the first input tensor)."""
        return _tensors(self.inputs)[0].device

    def take(self, index: torch.Tensor | slice) -> tuple[object, object]:
        """``(inputs, targets)`` of the samples ``index`` (same structure as the pool's).

        Args:
            index: Sample indices (a tensor on the pool's device, or a slice).
        """
        return _take(self.inputs, index), _take(self.targets, index)

    def to(self, device: str | torch.device) -> Pool:
        """The same samples on ``device`` (``self`` when they are there already).

        Args:
            device: A ``torch.device`` or its name (``"cpu"``, ``"cuda:0"``, ...).
        """
        device = torch.device(device)
        if all(t.device == device for t in _tensors(self.inputs) + _tensors(self.targets)):
            return self
        return Pool(to_device(self.inputs, device), to_device(self.targets, device))

    @staticmethod
    def from_batches(data: Iterable) -> Pool:
        """Concatenate batches into one pool.

        Args:
            data: Batches as :mod:`nets.engine.adapters` takes them: ``(inputs, targets)``
                pairs or ``datasets``-style mappings with a ``"labels"`` entry.
        """
        pairs = [split_batch(b, i) for i, b in enumerate(data)]
        if not pairs:
            raise ValueError("Pool.from_batches needs at least one batch")
        return Pool(_cat([x for x, _ in pairs]), _cat([y for _, y in pairs]))


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adam"``.
        lr: Constant learning rate (> 0).
        steps: Number of minibatch steps.
        batch_size: Minibatch size (<= pool size).
        seed: Seed of the model initialization (passed to the factory).
        data_seed: Seed of the data order (shared by the runs being compared).
        eval_every: Pool-loss evaluation period in steps (the last step is always evaluated).
        momentum: SGD momentum.
        betas: Adam's ``(β₁, β₂)``.
        eps: Adam's ε.
        weight_decay: Decoupled weight decay for Adam (AdamW); 0 gives Adam.
        divergence_factor: A loss above ``max(factor · L₀, L₀ + 10)`` counts as divergence.
    """

    optimizer: str
    lr: float
    steps: int
    batch_size: int
    seed: int = 0
    data_seed: int = 0
    eval_every: int = 25
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    divergence_factor: float = 10.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        for label in ("steps", "batch_size", "eval_every"):
            v = getattr(self, label)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{label} must be a positive integer, got {v!r}")
        for label in ("seed", "data_seed"):
            v = getattr(self, label)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{label} must be a non-negative integer, got {v!r}")
        if not self.divergence_factor > 1:
            raise ValueError("divergence_factor must exceed 1")

    def to_dict(self) -> dict:
        """The configuration as plain values (betas as a list)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one run.

    Attributes:
        config: The run's settings.
        losses: ``(steps_done,)`` minibatch losses (float64), step ``t`` at index ``t``.
        eval_steps: Steps at which the pool loss was evaluated (0 = initialization).
        eval_losses: Pool losses at ``eval_steps``.
        diverged: Whether the run was stopped for divergence.
        diverged_step: The step (0-based index into ``losses``, or the eval step) where the
            divergence was detected; ``None`` if it did not diverge.
        final_loss: Pool loss after the last step; ``inf`` for a diverged run.
        heldout_losses: Held-out pool losses at ``eval_steps`` (empty without a held-out pool).
    """

    config: TrainConfig
    losses: np.ndarray
    eval_steps: np.ndarray
    eval_losses: np.ndarray
    diverged: bool
    diverged_step: int | None
    final_loss: float
    heldout_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def initial_loss(self) -> float:
        """The pool loss at step 0 (the first evaluation)."""
        return float(self.eval_losses[0])

    def to_dict(self) -> dict:
        """The run as plain values (arrays as lists); :meth:`from_dict` reads it back."""
        return {"config": self.config.to_dict(), "losses": self.losses.tolist(),
                "eval_steps": self.eval_steps.tolist(), "eval_losses": self.eval_losses.tolist(),
                "diverged": self.diverged, "diverged_step": self.diverged_step,
                "final_loss": self.final_loss, "heldout_losses": self.heldout_losses.tolist()}

    @staticmethod
    def from_dict(d: dict) -> TrainResult:
        """The run :meth:`to_dict` wrote (arrays back as float64/int64 numpy arrays).

        Args:
            d: A dict written by :meth:`to_dict`.
        """
        cfg = dict(d["config"])
        cfg["betas"] = tuple(cfg["betas"])
        return TrainResult(TrainConfig(**cfg), np.asarray(d["losses"], dtype=np.float64),
                           np.asarray(d["eval_steps"], dtype=np.int64),
                           np.asarray(d["eval_losses"], dtype=np.float64), bool(d["diverged"]),
                           d["diverged_step"], float(d["final_loss"]),
                           np.asarray(d.get("heldout_losses", ()), dtype=np.float64))


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], *, lr: float,
                   momentum: float = 0.9,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` with momentum (``"sgd"``) or ``torch.optim.AdamW`` (``"adam"``).

    Args:
        name: ``"sgd"`` or ``"adam"``.
        params: The parameters to optimize.
        lr: Learning rate.
        momentum: SGD's momentum.
        betas: Adam's ``(β1, β2)``.
        eps: Adam's ``ε``.
        weight_decay: Decoupled weight decay (AdamW) or L2 (SGD).
    """
    params = list(params)
    if not params:
        raise ValueError("the model has no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS}")


def batch_order(n: int, *, batch_size: int, steps: int, data_seed: int) -> list[torch.Tensor]:
    """Index tensors of the ``steps`` minibatches (fixed by ``data_seed``; see module doc).

    Args:
        n: Pool size.
        batch_size: Samples per minibatch.
        steps: Number of minibatches.
        data_seed: Seed of the order (the same for SGD and Adam).
    """
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the pool size {n}")
    per_epoch = n // batch_size
    out: list[torch.Tensor] = []
    epoch = 0
    while len(out) < steps:
        g = torch.Generator().manual_seed(int(data_seed) * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g)
        out.extend(perm[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch))
        epoch += 1
    return out[:steps]


@torch.no_grad()
def pool_loss(model: torch.nn.Module, loss_fn: LossFn, pool: Pool, *,
              chunk: int = 256) -> float:
    """Mean loss over the pool (chunks weighted by their number of samples).

    Args:
        model: The model.
        loss_fn: ``loss_fn(outputs, targets)``, a mean over samples.
        pool: The samples.
        chunk: Samples per forward pass.
    """
    total, n = 0.0, len(pool)
    for i in range(0, n, chunk):
        x, y = pool.take(slice(i, i + chunk))
        total += float(loss_fn(forward(model, x), y)) * min(chunk, n - i)
    return total / n


def train(factory: Callable[[int], tuple[torch.nn.Module, LossFn]], pool: Pool,
          config: TrainConfig, *, callback: Callable[[int, float], None] | None = None,
          heldout: Pool | None = None) -> TrainResult:
    """Train one model and record its loss curves.

    Args:
        factory: ``factory(seed) -> (model, loss_fn)``, a fresh model at its seeded
            initialization (moved to the pool's device).
        pool: Training samples, on the device to train on.
        config: Run settings.
        callback: ``callback(step, loss)`` after every step (progress reporting).
        heldout: Samples never trained on; their mean loss is evaluated with the pool loss
            (a non-finite held-out loss counts as divergence).

    Returns:
        The :class:`TrainResult`; divergence is reported in it, never raised.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError("config must be a TrainConfig")
    if not isinstance(pool, Pool):
        raise TypeError("pool must be a nets.studies.training.Pool")
    if heldout is not None and not isinstance(heldout, Pool):
        raise TypeError("heldout must be a nets.studies.training.Pool or None")
    model, loss_fn = factory(config.seed)
    model = model.to(pool.device)
    opt = make_optimizer(config.optimizer, (p for p in model.parameters() if p.requires_grad),
                         lr=config.lr, momentum=config.momentum, betas=config.betas,
                         eps=config.eps, weight_decay=config.weight_decay)
    order = [idx.to(pool.device) for idx in
             batch_order(len(pool), batch_size=config.batch_size, steps=config.steps,
                         data_seed=config.data_seed)]
    l0 = pool_loss(model, loss_fn, pool)
    if not math.isfinite(l0):
        raise ValueError(f"the loss at initialization is not finite ({l0})")
    limit = max(config.divergence_factor * l0, l0 + 10.0)
    losses: list[float] = []
    eval_steps, eval_losses = [0], [l0]
    held: list[float] = []
    if heldout is not None:
        h0 = pool_loss(model, loss_fn, heldout)
        if not math.isfinite(h0):
            raise ValueError(f"the held-out loss at initialization is not finite ({h0})")
        held.append(h0)
    diverged_step: int | None = None
    for t, idx in enumerate(order):
        opt.zero_grad(set_to_none=True)
        x, y = pool.take(idx)
        loss = loss_fn(forward(model, x), y)
        val = float(loss.detach())
        if not (math.isfinite(val) and val <= limit):
            diverged_step = t
            break
        loss.backward()
        opt.step()
        losses.append(val)
        if callback is not None:
            callback(t, val)
        done = t + 1
        if done % config.eval_every == 0 or done == config.steps:
            pl = pool_loss(model, loss_fn, pool)
            hl = pool_loss(model, loss_fn, heldout) if heldout is not None else 0.0
            if not (math.isfinite(pl) and pl <= limit and math.isfinite(hl)):
                diverged_step = t
                break
            eval_steps.append(done)
            eval_losses.append(pl)
            if heldout is not None:
                held.append(hl)
    diverged = diverged_step is not None
    return TrainResult(config, np.asarray(losses, dtype=np.float64),
                       np.asarray(eval_steps, dtype=np.int64),
                       np.asarray(eval_losses, dtype=np.float64), diverged, diverged_step,
                       math.inf if diverged else float(eval_losses[-1]),
                       np.asarray(held, dtype=np.float64))
