"""How the engine meets a user's model and data: batches, devices, modes, the forward call.

Every Hessian-vector product in :mod:`nets.engine` calls the model through
:func:`functional_forward` and every data set goes through :func:`prepare_data`, so supporting a
new kind of input, output or batch happens here and nowhere else.

**Batches.** ``data`` is a re-iterable of batches, each either

* an ``(inputs, targets)`` pair, where ``inputs`` is a tensor (one positional argument), a tuple
  of tensors (positional arguments) or a mapping of tensors (keyword arguments, e.g.
  ``{"input_ids": ..., "attention_mask": ...}``); or
* a mapping with a ``"labels"`` entry (a Hugging Face ``datasets``-style batch): the targets are
  ``batch["labels"]`` and the other entries are the keyword arguments of the model.

**Outputs.** The loss function receives whatever the model returns (a tensor, a tuple, a Hugging
Face ``ModelOutput``): ``loss_fn(model(**inputs), targets)``.

**Attention.** Fused attention kernels (flash, memory-efficient) have neither forward-mode
derivatives nor double backward, so every forward call of the engine runs inside
``torch.nn.attention.sdpa_kernel([SDPBackend.MATH])``: ``F.scaled_dot_product_attention`` (and so
Hugging Face's default ``attn_implementation="sdpa"``) evaluates the same attention with ordinary
differentiable operations.

**Weight norm.** ``torch._weight_norm`` (behind ``nn.utils.parametrizations.weight_norm`` and the
older ``nn.utils.weight_norm``) runs a fused kernel whose double backward is not the second
derivative on torch 2.13 (the Hessian it gives is not symmetric; ``tests/nets/test_weight_norm.py``
shows it) and which has no forward-mode AD. For a model that uses weight norm the engine's
forward calls evaluate it by its formula ``w = g · v / ‖v‖`` (norms over every axis but
``dim``), the same function, differentiated exactly in every mode (:func:`exact_derivatives`).

**Embedding gradients.** ``nn.Embedding(scale_grad_by_freq=True)`` divides each row's gradient by
the row's count in the batch: what its backward returns is not the gradient of the loss, and
the double backward through it gives an asymmetric matrix that is not the Hessian.
``sparse=True`` returns a sparse gradient, which has neither double backward nor forward-mode
derivatives. Both flags leave the forward value unchanged, so the engine's forward calls run
these embeddings without them (:func:`exact_derivatives`): the Hessian is that of the loss,
whatever the optimizer is given (the frequency-scaled "gradient" is the gradient of no function,
so there is no Hessian of it to take; the padding row's stopped gradient, below, is one).
``nn.EmbeddingBag``'s fused kernel has no second derivative: it runs as
:func:`embedding_bag_formula`.

**Recurrent layers.** On a GPU, cuDNN's kernels for ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` have
no double backward (and no backward at all in evaluation mode). For a model with such a layer
the engine's forward calls run with cuDNN off (:func:`exact_derivatives`,
:func:`uses_recurrent_layers`): torch's own kernels compute the same values and have every
derivative.

**Tied weights.** A tensor shared by several modules (GPT-2's token embedding and output head)
is one parameter (``named_parameters`` lists it once, under its first name) and so one block;
its Hessian block includes the curvature through both uses.

**Padding rows.** ``nn.Embedding(padding_idx=p)`` zeroes the gradient of row ``p`` that flows
through the lookup in reverse mode; forward mode does not, so the AD modes would disagree. Here
the lookup sees ``W' = K ⊙ W + (1 − K) ⊙ stop_gradient(W)`` with ``K`` zero on the padding
row, the same value (:func:`exact_derivatives`), in that lookup alone: every mode then
differentiates the function whose gradient is torch's. Where the padding row is used nowhere
else its ``d`` coordinates add ``d`` zero eigenvalues to the embedding's block; where the
weight is tied to an output head (a masked language model's decoder), the head's curvature of
that row is kept, as training sees it (torch's gradient trains the row through the head).

**Batch size** ``n_b`` (the weight of the batch in the mean loss) is the length of the first axis
of the targets (or of their first tensor when the targets are a tuple or mapping), or of the
inputs where the targets are ``None`` (a model that computes its own loss from labels among its
inputs: ``(batch_with_labels, None)`` pairs and ``loss_fn = lambda out, _: out.loss``).

**Loss.** ``loss_fn`` must return a scalar floating tensor (:func:`checked_loss`); anything else
is refused with what it returned, and ``None`` with the likely cause: a Hugging Face model
returns ``loss=None`` when it is not given labels, and a mapping batch's ``"labels"`` go to
``loss_fn`` as the targets, not to the model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm
from torch.overrides import TorchFunctionMode

from nets.engine.distributed import Communicator

__all__ = ["LossError", "altered_embedding_gradients", "batch_size", "check_modes",
           "checked_loss", "embedding_bag_formula", "exact_derivatives", "first_samples",
           "forward", "functional_forward", "math_attention", "prepare_data",
           "split_batch", "to_device", "uses_recurrent_layers", "uses_weight_norm"]

LossFn = Callable[[object, object], torch.Tensor]

#: Key of the targets in a mapping batch (the Hugging Face convention).
LABELS_KEY = "labels"


def math_attention() -> AbstractContextManager[None]:
    """A context in which ``F.scaled_dot_product_attention`` runs on PyTorch's math kernel, the
    only one with forward-mode AD and double backward (the fused kernels have neither)."""
    return sdpa_kernel([SDPBackend.MATH])


class _ExactDerivatives(TorchFunctionMode):
    """Operations whose built-in derivatives are not the function's, evaluated so that they are
    (module docstring): ``torch._weight_norm(v, g, dim)`` as ``v · (g / norm_except_dim(v, 2,
    dim))``; ``F.embedding`` and ``torch.embedding`` with ``scale_grad_by_freq`` and ``sparse``
    off (the same values; the gradient exact and dense) and the padding row held constant in
    this lookup alone (forward mode then agrees with reverse); ``F.embedding_bag`` by
    :func:`embedding_bag_formula`."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch._weight_norm:
            v, g = args[0], args[1]
            dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
            return v * (g / torch.norm_except_dim(v, 2, dim))
        if func is F.embedding or func is torch.embedding:
            bound = _SIGNATURES[func].bind(*args, **kwargs)
            bound.arguments.update(scale_grad_by_freq=False, sparse=False)
            pad = bound.arguments.get("padding_idx")
            if pad is not None and (func is F.embedding or pad >= 0):  # torch.embedding: -1
                weight = bound.arguments["weight"]
                bound.arguments["weight"] = _freeze_rows(weight, int(pad) % weight.shape[0])
            return func(*bound.args, **bound.kwargs)
        if func is F.embedding_bag:
            return embedding_bag_formula(*args, **kwargs)
        return func(*args, **kwargs)


#: The signatures :class:`_ExactDerivatives` binds its embeddings' arguments to
#: (``torch.embedding`` is a builtin without one).
_SIGNATURES = {
    F.embedding: inspect.signature(F.embedding),
    torch.embedding: inspect.Signature([
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
        for n, d in (("weight", inspect.Parameter.empty), ("indices", inspect.Parameter.empty),
                     ("padding_idx", -1), ("scale_grad_by_freq", False), ("sparse", False))]),
}


def embedding_bag_formula(input: torch.Tensor, weight: torch.Tensor,
                          offsets: torch.Tensor | None = None, max_norm: float | None = None,
                          norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                          mode: str = "mean", sparse: bool = False,
                          per_sample_weights: torch.Tensor | None = None,
                          include_last_offset: bool = False,
                          padding_idx: int | None = None) -> torch.Tensor:
    """``F.embedding_bag`` written with differentiable operations: the same values, exact
    second and forward-mode derivatives (torch's fused kernel has neither).

    Bag ``b`` holds the indices ``i ∈ B_b`` (a row of a 2-D ``input``, or ``input[offsets[b]:
    offsets[b+1]]``), less those equal to ``padding_idx``; with rows ``W_i`` and per-sample
    weights ``a_i`` (1 without them) the result is

        ``sum``: ``Σ_{i∈B_b} a_i W_i``;  ``mean``: ``(1/|B_b|) Σ_{i∈B_b} W_i``;
        ``max``: ``max_{i∈B_b} W_i`` (per coordinate),

    and 0 for an empty bag, as torch's. The bags are laid out as a padded ``(bags, longest)``
    index matrix with a mask, so each mode is one masked reduction. ``scale_grad_by_freq`` and
    ``sparse`` change only torch's gradient and are ignored (module docstring); ``max_norm``
    renormalizes the rows in place as ``F.embedding`` does.

    Args:
        input: Indices: a ``(bags, n)`` tensor, or 1-D with ``offsets``.
        weight: The ``(rows, embedding_dim)`` embedding matrix ``W``.
        offsets: Where each bag starts in a 1-D ``input`` (``None`` for 2-D).
        max_norm: Rows of larger norm are renormalized to it in place (``None``: not).
        norm_type: The p of that norm.
        scale_grad_by_freq: Ignored (changes only torch's gradient).
        mode: ``"sum"``, ``"mean"`` or ``"max"``.
        sparse: Ignored (changes only torch's gradient's layout).
        per_sample_weights: Weights ``a_i`` of the indices, shaped as ``input`` (``sum`` only).
        include_last_offset: ``offsets`` ends with ``len(input)`` (one more than the bags).
        padding_idx: An index left out of every bag (``None``: none).

    Returns:
        The ``(bags, embedding_dim)`` tensor.

    Raises:
        ValueError: an unknown ``mode``, or ``per_sample_weights`` with a mode other than
            ``"sum"`` (as torch's).
    """
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"embedding_bag: mode must be 'sum', 'mean' or 'max', got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise ValueError(f"embedding_bag: per_sample_weights is only supported for mode='sum', "
                         f"got mode={mode!r}")
    if input.dim() == 2:
        index = input
        valid = torch.ones(input.shape, dtype=torch.bool, device=input.device)
        weights = per_sample_weights
    else:
        ends = offsets[1:] if include_last_offset else torch.cat(
            [offsets[1:], offsets.new_tensor([input.numel()])])
        starts = offsets[:-1] if include_last_offset else offsets
        lengths = ends - starts
        bag = torch.repeat_interleave(torch.arange(len(starts), device=input.device), lengths)
        position = torch.arange(input.numel(), device=input.device) - starts[bag]
        longest = max(int(lengths.max()) if lengths.numel() else 0, 1)  # amax needs one
        index = input.new_zeros((len(starts), longest))
        index[bag, position] = input
        valid = torch.zeros(index.shape, dtype=torch.bool, device=input.device)
        valid[bag, position] = True
        weights = None
        if per_sample_weights is not None:
            weights = per_sample_weights.new_zeros(index.shape).index_put(
                (bag, position), per_sample_weights)
    if padding_idx is not None:
        valid = valid & (index != padding_idx % weight.shape[0])
    if max_norm is not None:
        with torch.no_grad():
            torch.embedding_renorm_(weight, input.reshape(-1), max_norm, norm_type)
    rows = F.embedding(index, weight)
    mask = valid.unsqueeze(-1)
    if mode == "max":
        top = rows.masked_fill(~mask, float("-inf")).amax(1)
        return torch.where(valid.any(1, keepdim=True), top, torch.zeros_like(top))
    scale = valid.to(rows.dtype) if weights is None else weights * valid
    total = (rows * scale.unsqueeze(-1)).sum(1)
    if mode == "sum":
        return total
    return total / valid.sum(1, keepdim=True).clamp(min=1).to(rows.dtype)


def _weight_normed(m: torch.nn.Module) -> bool:
    """Whether ``m`` is torch's weight-norm parametrization (``nn.utils.parametrizations.
    weight_norm`` registers a private ``_WeightNorm`` module, listed among the model's modules)
    or carries the older hook (``nn.utils.weight_norm``)."""
    return type(m).__name__ == "_WeightNorm" or (bool(m._forward_pre_hooks) and any(
        isinstance(h, WeightNorm) for h in m._forward_pre_hooks.values()))


def _altered_embedding(m: torch.nn.Module) -> bool:
    """Whether ``m`` is an embedding whose derivatives :func:`exact_derivatives` evaluates
    (:func:`altered_embedding_gradients`)."""
    if isinstance(m, torch.nn.Embedding):
        return m.scale_grad_by_freq or m.sparse or m.padding_idx is not None
    return isinstance(m, torch.nn.EmbeddingBag)


def uses_weight_norm(model: torch.nn.Module) -> bool:
    """Whether ``model`` has a weight-normalized parameter (``nn.utils.parametrizations.
    weight_norm`` or the older hook-based ``nn.utils.weight_norm``).

    Args:
        model: The model.
    """
    return any(_weight_normed(m) for m in model.modules())


def altered_embedding_gradients(model: torch.nn.Module) -> list[str]:
    """The embedding modules of ``model`` whose derivatives the engine evaluates itself
    (:func:`exact_derivatives`): ``nn.Embedding`` with ``scale_grad_by_freq=True`` (each row's
    gradient divided by its count in the batch: not a gradient of the loss, so its "Hessian"
    is asymmetric and wrong), ``sparse=True`` (a sparse gradient, which has no double backward
    nor forward-mode derivative) or a ``padding_idx`` (reverse mode zeroes the padding row's
    gradient through the lookup, forward mode does not), and every ``nn.EmbeddingBag`` (its
    fused kernel has no second derivative).

    Args:
        model: The model.

    Returns:
        Their module names.
    """
    return [name for name, m in model.named_modules() if _altered_embedding(m)]


def exact_derivatives(model: torch.nn.Module) -> AbstractContextManager[None]:
    """A context in which the operations of ``model`` whose built-in derivatives are not the
    function's are evaluated so that they are (module docstring): weight norm by its formula
    ``w = g · v / ‖v‖`` (torch's fused kernel has a double backward that is not the second
    derivative), embeddings without ``scale_grad_by_freq`` and ``sparse`` and with their
    padding row constant in the lookup, embedding bags by :func:`embedding_bag_formula`
    (:func:`uses_weight_norm`, :func:`altered_embedding_gradients`), and recurrent layers
    without cuDNN (:func:`uses_recurrent_layers`). A no-op for a model with none of these (the
    override costs a Python call per operation, so it is entered only where needed; deciding
    is one pass over the modules, on every forward call).

    Args:
        model: The model whose forward calls the context wraps.
    """
    override = recurrent = False
    for m in model.modules():
        override = override or _weight_normed(m) or _altered_embedding(m)
        recurrent = recurrent or isinstance(m, _RECURRENT)
    if not (override or recurrent):
        return nullcontext()
    stack = ExitStack()
    if recurrent:
        stack.enter_context(_without_cudnn())
    if override:
        stack.enter_context(_ExactDerivatives())
    return stack


#: The recurrent layers whose cuDNN kernels have no double backward: the whole-sequence
#: modules (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``).
_RECURRENT = torch.nn.RNNBase


def uses_recurrent_layers(model: torch.nn.Module) -> bool:
    """Whether ``model`` has a recurrent layer (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``), which the
    engine's forward calls run without cuDNN: on a GPU, cuDNN's recurrent kernels have no
    double backward (torch raises ``the derivative for '_cudnn_rnn_backward' is not
    implemented``) and no backward at all in evaluation mode; torch's own kernels have both.
    The layers' values are the same; the model's other layers then also run without cuDNN
    during those calls (convolutions on torch's own kernels: slower on a GPU, the same on a
    CPU, where cuDNN is not used).

    Args:
        model: The model.
    """
    return any(isinstance(m, _RECURRENT) for m in model.modules())


@contextmanager
def _without_cudnn() -> Iterator[None]:
    """cuDNN off (``torch.backends.cudnn.enabled``), its other settings untouched, and the
    caller's setting restored on leaving."""
    before = torch.backends.cudnn.enabled
    torch.backends.cudnn.enabled = False
    try:
        yield
    finally:
        torch.backends.cudnn.enabled = before


def _freeze_rows(w: torch.Tensor, row: int) -> torch.Tensor:
    keep = torch.ones(w.shape[0], *(1,) * (w.ndim - 1), dtype=w.dtype, device=w.device)
    keep[row] = 0
    return keep * w + (1 - keep) * w.detach()


def functional_forward(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor] |
                       tuple[Mapping[str, torch.Tensor], ...], inputs: object) -> object:
    """``model(inputs)`` evaluated with the parameters and buffers ``tensors`` (``torch.func``).

    Math attention is selected; weight norm and embeddings are evaluated so that every mode
    differentiates them exactly (:func:`exact_derivatives`, module docstring).

    Args:
        model: The module.
        tensors: Parameters and buffers by name, or a tuple of such dicts
            (as :func:`torch.func.functional_call` accepts).
        inputs: A tensor (one positional argument), a tuple of positional arguments, or a
            mapping of keyword arguments.

    Returns:
        Whatever the model returns; the loss function receives it unchanged.
    """
    args, kwargs = _arguments(inputs)
    with math_attention(), exact_derivatives(model):
        return functional_call(model, tensors, args, kwargs)


def forward(model: torch.nn.Module, inputs: object) -> object:
    """``model(inputs)`` with the model's own parameters, unpacked as in
    :func:`functional_forward` (math attention).

    Args:
        model: The model.
        inputs: Batch inputs (a tensor, a tuple of positional inputs or a mapping of keyword
            inputs).
    """
    args, kwargs = _arguments(inputs)
    with math_attention(), exact_derivatives(model):
        return model(*args, **kwargs)


def _arguments(inputs: object) -> tuple[tuple, dict]:
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, tuple):
        return inputs, {}
    return (inputs,), {}


def split_batch(batch: object, index: int = 0) -> tuple[object, object]:
    """``(inputs, targets)`` of one batch (see the module docstring for the accepted forms).

    Args:
        batch: One batch.
        index: Its position in the data (for error messages).

    Raises:
        TypeError: the batch is neither an ``(inputs, targets)`` pair nor a mapping with a
            ``"labels"`` entry.
    """
    if isinstance(batch, Mapping):
        if LABELS_KEY not in batch:
            raise TypeError(f"batch {index} is a mapping without a {LABELS_KEY!r} entry "
                            f"(keys: {', '.join(map(str, batch))}); put the targets under "
                            f"{LABELS_KEY!r} or pass (inputs, targets) pairs")
        return {k: v for k, v in batch.items() if k != LABELS_KEY}, batch[LABELS_KEY]
    if isinstance(batch, tuple | list) and len(batch) == 2:
        x = batch[0]
        return (tuple(x) if isinstance(x, list) else x), batch[1]
    raise TypeError(f"batch {index} is not an (inputs, targets) pair nor a mapping with a "
                    f"{LABELS_KEY!r} entry (got {type(batch).__name__})")


def first_samples(x: object, n: int) -> object:
    """The first ``n`` samples of batch inputs or targets (tensors sliced on their first axis,
    also inside tuples, lists and mappings; other values unchanged).

    Args:
        x: Batch inputs or targets.
        n: Number of samples kept.
    """
    if isinstance(x, torch.Tensor):
        return x[:n] if x.ndim else x
    if isinstance(x, tuple | list):
        return type(x)(first_samples(v, n) for v in x)
    if isinstance(x, Mapping):
        return {k: first_samples(v, n) for k, v in x.items()}
    return x


def batch_size(targets: object, inputs: object = None) -> int:
    """Number of samples ``n_b`` of a batch from its targets (first axis of the first tensor),
    or from its inputs where the targets are ``None``.

    Args:
        targets: The batch's targets (a tensor, or a structure of tensors), or ``None`` (a
            model that computes its loss from its inputs).
        inputs: The batch's inputs, counted where ``targets`` is ``None``.
    """
    if targets is None and inputs is not None:
        return batch_size(inputs)
    if isinstance(targets, torch.Tensor):
        return int(targets.shape[0]) if targets.ndim else 1
    if isinstance(targets, Mapping):
        targets = list(targets.values())
    if isinstance(targets, tuple | list) and targets and isinstance(targets[0], torch.Tensor):
        return batch_size(targets[0])
    try:
        return len(targets)  # type: ignore[arg-type]
    except TypeError:
        return 1


class LossError(ValueError):
    """``loss_fn`` returned something other than a scalar floating tensor."""


def checked_loss(loss: object) -> torch.Tensor:
    """``loss``, checked to be what the Hessian is of: a scalar floating tensor, the batch's
    mean loss ``ℓ_b``.

    Args:
        loss: What ``loss_fn(model(inputs), targets)`` returned.

    Returns:
        ``loss`` itself.

    Raises:
        LossError: ``loss`` is not a tensor, has axes, or is not floating; for ``None`` the
            message names the likely cause (a Hugging Face model given no labels) and the fix.
    """
    if isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.is_floating_point():
        return loss
    if loss is None:
        raise LossError(
            "loss_fn returned None. A Hugging Face model returns loss=None when it is not "
            f"given labels, and a mapping batch's {LABELS_KEY!r} go to loss_fn as the "
            "targets, not to the model: compute the loss from the output's logits and the "
            "targets, or pass (inputs, targets) pairs whose inputs keep the labels, e.g. "
            f"(batch, batch[{LABELS_KEY!r}]), so that loss_fn may return out.loss")
    got = (f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) and loss.ndim
           else f"dtype {loss.dtype}" if isinstance(loss, torch.Tensor)
           else type(loss).__name__)
    raise LossError(f"loss_fn must return a scalar floating tensor (a mean loss), got {got}")


def to_device(x: object, device: torch.device, dtype: torch.dtype | None = None) -> object:
    """``x`` with every tensor (also inside tuples, lists and mappings) moved to ``device``.

    Args:
        x: Tensors, possibly nested in tuples, lists and mappings.
        device: The target device.
        dtype: If given, floating-point tensors are also cast to it (integer ones, token ids
            and class labels, are left as they are).
    """
    if isinstance(x, torch.Tensor):
        if dtype is not None and x.is_floating_point():
            return x.to(device=device, dtype=dtype)
        return x.to(device)
    if isinstance(x, tuple | list):
        return type(x)(to_device(v, device, dtype) for v in x)
    if isinstance(x, Mapping):
        return {k: to_device(v, device, dtype) for k, v in x.items()}
    return x


def check_modes(model: torch.nn.Module) -> None:
    """Refuse modules whose training mode makes the loss random or batch-dependent.

    Args:
        model: The model.

    Raises:
        ValueError: a dropout layer with ``p > 0``, a batch-norm layer or a spectral norm
            (``nn.utils.parametrizations.spectral_norm`` or the older hook) in training mode,
            naming the module and the fix.
    """
    for name, m in model.named_modules():
        if not m.training:
            continue
        if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0:
            raise ValueError(f"module {name or 'model'!r} is a dropout layer in training mode: "
                             "the loss is random and has no Hessian; call model.eval() or set "
                             "p=0")
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            raise ValueError(f"module {name or 'model'!r} is a batch-norm layer in training "
                             "mode: its statistics depend on the batch and it updates buffers; "
                             "call model.eval() (fixed statistics) or use GroupNorm/LayerNorm")
        if type(m).__name__ == "_SpectralNorm" or any(  # torch's private parametrization
                isinstance(h, SpectralNorm) for h in m._forward_pre_hooks.values()):
            raise ValueError(f"module {name or 'model'!r} is a spectral norm in training mode: "
                             "every forward call runs a power-iteration step that updates its "
                             "buffers (u, v), so the loss changes from call to call; call "
                             "model.eval() (the stored u, v are then constants)")


def prepare_data(model: torch.nn.Module, loss_fn: LossFn, data: Iterable, *,
                 device: torch.device, comm: Communicator | None = None,
                 evaluate: Callable[[int, object, object, int], torch.Tensor] | None = None
                 ) -> list[tuple[object, object, float]]:
    """Materialize and check the data: ``[(inputs, targets, weight)]`` with weights ``n_b/N``.

    Checks that the data is re-iterable and non-empty, that each batch loss is a finite scalar,
    and that the loss is deterministic (two evaluations on the first batch agree exactly).
    That is ``B + 1`` loss evaluations for ``B`` batches, by default forward calls without
    autograd; a caller that evaluates the batches anyway passes ``evaluate`` and makes its own
    work the evaluations (:class:`nets.engine.hvp.BlockHVP` builds batch 0's gradient graph to
    measure it, and the graphs its products keep), saving the forward calls.
    With a distributed ``comm``, ``data`` is this rank's shard, ``N`` counts the samples of all
    ranks, and a check failing on one rank fails on every rank.

    Args:
        model: The model (for the loss checks).
        loss_fn: ``loss_fn(outputs, targets)``, a mean over samples.
        data: Re-iterable batches.
        device: Where the batches go.
        comm: Communicator (``data`` is then this rank's shard).
        evaluate: ``evaluate(i, inputs, targets, k)`` is batch ``i``'s loss, evaluation ``k``
            (0, and 1 for the determinism check of batch 0); both evaluations of batch 0 must
            take the same code path (default: ``loss_fn(model(inputs), targets)`` without
            autograd).

    Raises:
        TypeError: ``data`` is a one-shot iterator, or a batch has none of the accepted forms.
        ValueError: empty data, non-scalar or non-finite loss, random loss (dropout, train-mode
            batch norm, or any other randomness).
        nets.engine.distributed.DistributedError: the checks failed on another rank.
    """
    comm = comm or Communicator()
    batches = comm.together(lambda: _checked_batches(model, loss_fn, data, device, evaluate),
                            what="checking the data shards")
    total = comm.sum_int(sum(n for _, _, n in batches), what="counting samples")
    return [(x, y, n / total) for x, y, n in batches]


def _checked_batches(model: torch.nn.Module, loss_fn: LossFn, data: Iterable,
                     device: torch.device,
                     evaluate: Callable[[int, object, object, int], torch.Tensor] | None
                     ) -> list[tuple[object, object, int]]:
    if evaluate is None:
        def evaluate(i: int, x: object, y: object, k: int) -> torch.Tensor:
            with torch.no_grad():
                return loss_fn(forward(model, x), y)

    try:
        one_shot = iter(data) is data
    except TypeError:
        raise TypeError(f"data must be a re-iterable of (inputs, targets) batches, got "
                        f"{type(data).__name__}") from None
    if one_shot:
        raise TypeError("data is a one-shot iterator; pass a re-iterable (list, DataLoader "
                        "without shuffling) because the Hessian needs many passes")
    check_modes(model)
    batches = []
    for i, batch in enumerate(data):
        x, y = split_batch(batch, i)
        x, y = to_device(x, device), to_device(y, device)
        batches.append((x, y, batch_size(y, x)))
    if not batches:
        raise ValueError("data is empty: the mean loss over no samples is undefined")
    total = sum(n for _, _, n in batches)
    if total <= 0:
        raise ValueError("data has no samples")
    for i, (x, y, _) in enumerate(batches):
        try:
            loss = checked_loss(evaluate(i, x, y, 0))
        except LossError as e:
            raise LossError(f"batch {i}: {e}") from None
        except Exception as e:  # the user's model or loss on the user's data
            first = str(e).splitlines()[0] if str(e) else ""
            raise ValueError(f"data: the model or loss_fn fails on batch {i} "
                             f"({type(e).__name__}: {first}); check the shapes and dtypes "
                             "of the inputs and targets, and that the model itself runs "
                             "on this batch in its dtype and on its device (some kernels "
                             "take no float64: call the model on the batch to see)") from e
        loss = loss.detach()
        if not torch.isfinite(loss):
            raise ValueError(f"the loss is not finite on batch {i} ({loss.item()}): check "
                             "loss_fn and the data")
        if i == 0:
            second = evaluate(0, x, y, 1).detach()
            if not torch.equal(loss, second):
                raise ValueError("the loss is not deterministic: two evaluations on the "
                                 f"same batch gave {loss.item()!r} and {second.item()!r}; "
                                 "remove dropout, data augmentation and other randomness")
    return batches
