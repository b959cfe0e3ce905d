"""Blocks by role: weight matrices, biases, normalization gains, embeddings, attention Q/K/V.

Roles are read from module types and tensor shapes, not from parameter names, so they hold for
models we did not write (Hugging Face names its norm gains ``LayerNorm.weight``,
``layernorm_before.weight``, ``normalization.weight``; a name pattern misses some of them). A
parameter ``p`` held by module ``m`` (as ``m.<leaf>``) has the role

* ``"norm"``: ``m`` is a normalization layer (``LayerNorm``, ``GroupNorm``, batch/instance norm,
  ``RMSNorm``, or a class whose name ends in ``Norm`` such as ``LlamaRMSNorm``): gains and shifts;
* ``"embedding"``: ``m`` is an ``nn.Embedding``/``nn.EmbeddingBag``, or ``p`` is a learned token or
  position table held directly by a module (not by a layer), shaped ``(1, …, d)`` to broadcast
  over the batch (ViT's class token and position embeddings);
* ``"bias"``: a parameter its module holds as ``bias`` or ``<x>_bias`` (the attribute name in the
  module's own code, not the dotted path), whatever its shape;
* ``"weight"``: any other parameter with two or more axes (linear, convolution and GPT-2
  ``Conv1D`` weights, fused attention projections);
* ``"bias"``: any other one-axis parameter;
* ``"other"``: scalars.

**Block sets.** The JS statistics are reported on :data:`BLOCK_SETS`: ``"all"`` blocks, or the
``"matrices"``: blocks made only of parameters whose role is in :data:`MATRIX_ROLES` (weight
matrices and embeddings; :func:`matrix_blocks`). On the zoo models and the tiny Hugging Face
models this is the set of tensors with two or more axes; it differs where a 2-D tensor is a norm
gain (a ``(1, d)`` gain of a class named ``…Norm``) or a 2-D bias of a custom layer.

**Attention.** A module whose class name contains ``Attention`` (or an ``nn.MultiheadAttention``)
is an attention module; its head count is its first positive integer attribute among
``num_heads``, ``num_attention_heads``, ``n_head``, ``n_heads``, ``heads``. Its projections are

* *fused*: a two-axis weight of shape ``(3E, E)`` (linear layout) or ``(E, 3E)`` (GPT-2
  ``Conv1D`` layout) and its ``3E`` bias (``nn.MultiheadAttention.in_proj_*``, GPT-2
  ``c_attn``, the zoo's ``qkv``): split in three along the output axis into Q, K, V;
* *separate*: child linear layers named ``q``/``query``/``q_proj`` (and likewise ``k``, ``v``).

``split="qkv"`` makes Q, K and V separate blocks; ``split="heads"`` further splits the Q and K
weights into one block per head along the output axis (as in Adam-mini); V stays whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from nets.engine.blocks import Block, resolve_blocks
from nets.engine.checks import check_model

__all__ = ["BLOCK_SETS", "MATRIX_ROLES", "ROLES", "SPLITS", "AttentionPart", "attention_parts",
           "block_roles", "block_set", "matrix_blocks", "parameter_roles", "role_blocks"]

ROLES = ("weight", "bias", "norm", "embedding", "other")
#: The block sets JS0 is reported on: every block, or the weight matrices only.
BLOCK_SETS = ("all", "matrices")
#: The roles whose blocks form the ``"matrices"`` block set.
MATRIX_ROLES = ("weight", "embedding")
SPLITS = ("params", "qkv", "heads")

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.LocalResponseNorm,
          nn.RMSNorm)
_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_head", "n_heads", "heads")
_SEPARATE = {"q": re.compile(r"(q|query|q_proj|to_q|wq)$"),
             "k": re.compile(r"(k|key|k_proj|to_k|wk)$"),
             "v": re.compile(r"(v|value|v_proj|to_v|wv)$")}


@dataclass(frozen=True)
class AttentionPart:
    """Where Q, K, V live in one attention parameter.

    Attributes:
        parts: ``("q", "k", "v")`` for a fused tensor, or the one part (``("q",)``) it holds.
        axis: The output axis (0 for linear layout, 1 for GPT-2 ``Conv1D`` weights).
        heads: Number of heads of the attention module, or ``None`` if it does not say.
    """

    parts: tuple[str, ...]
    axis: int
    heads: int | None


def _owners(model: nn.Module) -> dict[str, tuple[str, nn.Module, str]]:
    """``{parameter name: (module name, module, leaf)}`` for the trainable parameters."""
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    out: dict[str, tuple[str, nn.Module, str]] = {}
    for mname, m in model.named_modules():
        for leaf, p in m.named_parameters(recurse=False):
            n = names.get(id(p))
            if n is not None and n not in out:
                out[n] = (mname, m, leaf)
    return out


def _is_layer(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear | nn.modules.conv._ConvNd | nn.Embedding |
                      nn.EmbeddingBag | nn.MultiheadAttention) or type(m).__name__ == "Conv1D"


def _role(m: nn.Module, p: torch.Tensor, leaf: str) -> str:
    if isinstance(m, _NORMS) or type(m).__name__.endswith("Norm"):
        return "norm"
    if leaf == "bias" or leaf.endswith("_bias"):
        return "bias"
    if isinstance(m, nn.Embedding | nn.EmbeddingBag):
        return "embedding"
    if not _is_layer(m) and p.ndim >= 2 and all(s == 1 for s in p.shape[:-2]) and p.shape[0] == 1:
        return "embedding"
    if p.ndim >= 2:
        return "weight"
    if p.ndim == 1:
        return "bias"
    return "other"


def parameter_roles(model: nn.Module) -> dict[str, str]:
    """The role (one of :data:`ROLES`) of every trainable parameter (module docstring).

    Args:
        model: The network.

    Returns:
        ``{parameter name: role}`` in ``named_parameters`` order.
    """
    check_model(model)
    own = _owners(model)
    return {n: _role(own[n][1], p, own[n][2]) for n, p in model.named_parameters()
            if p.requires_grad and n in own}


def _heads(m: nn.Module) -> int | None:
    for a in _HEAD_ATTRS:
        v = getattr(m, a, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def attention_parts(model: nn.Module) -> dict[str, AttentionPart]:
    """Q/K/V layout of the attention parameters (module docstring), by parameter name.

    Args:
        model: The network.

    Returns:
        ``{parameter name: AttentionPart}`` for fused and separate Q/K/V weights and biases.
    """
    check_model(model)
    own = _owners(model)
    by_module: dict[str, nn.Module] = dict(model.named_modules())
    out: dict[str, AttentionPart] = {}
    for n, (mname, m, leaf) in own.items():
        p = dict(m.named_parameters(recurse=False))[leaf]
        if isinstance(m, nn.MultiheadAttention):
            if leaf in ("in_proj_weight", "in_proj_bias"):
                out[n] = AttentionPart(("q", "k", "v"), 0, m.num_heads)
            elif leaf in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                out[n] = AttentionPart((leaf[0],), 0, m.num_heads)
            continue
        if not (isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"):
            continue
        parent_name, _, child = mname.rpartition(".")
        parent = by_module.get(parent_name)
        if parent is None or "Attention" not in type(parent).__name__:
            continue
        heads = _heads(parent)
        conv1d = type(m).__name__ == "Conv1D"
        axis = 1 if conv1d and leaf == "weight" else 0
        if p.ndim == 2:
            out_dim, in_dim = (p.shape[1], p.shape[0]) if conv1d else (p.shape[0], p.shape[1])
        else:
            w = getattr(m, "weight", None)
            if w is None or w.ndim != 2:
                continue
            out_dim, in_dim = (w.shape[1], w.shape[0]) if conv1d else (w.shape[0], w.shape[1])
        if out_dim == 3 * in_dim:
            out[n] = AttentionPart(("q", "k", "v"), axis, heads)
            continue
        for part, pat in _SEPARATE.items():
            if pat.fullmatch(child):
                out[n] = AttentionPart((part,), axis, heads)
    return out


def role_blocks(model: nn.Module, roles: tuple[str, ...] | list[str] | None = None, *,
                split: str = "params") -> dict[str, object]:
    """A ``blocks`` partition keeping the parameters of the given roles, Q/K/V split on demand.

    Args:
        model: The network.
        roles: Roles to keep (subset of :data:`ROLES`); ``None`` keeps all.
        split: ``"params"`` (one block per tensor), ``"qkv"`` (fused Q/K/V weights and biases
            split into Q, K, V blocks named ``<param>.q`` …) or ``"heads"`` (also Q and K weights
            into one block per head, ``<param>.q.head0`` …, ``<param>.head0`` when separate).

    Returns:
        ``{block name: spec}`` for :func:`nets.blockwise_spectrum` and the other block APIs.

    Raises:
        ValueError: an unknown role or split, no parameter left, or ``split="heads"`` on an
            attention module whose head count is unknown or does not divide its width.
    """
    check_model(model)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if roles is not None:
        if not isinstance(roles, list | tuple):
            raise TypeError(f"roles must be a list or tuple of role names, e.g. ('weight',), "
                            f"got {type(roles).__name__}")
        if not roles:
            raise ValueError(f"roles is empty: name at least one of {', '.join(ROLES)}")
        bad = [r for r in roles if not isinstance(r, str) or r not in ROLES]
        if bad:
            raise ValueError(f"unknown role(s) {', '.join(map(repr, bad))} in roles; choose "
                             f"from {', '.join(ROLES)}")
    keep = set(ROLES if roles is None else roles)
    params = dict(model.named_parameters())
    attn = attention_parts(model) if split != "params" else {}
    out: dict[str, object] = {}
    for n, role in parameter_roles(model).items():
        if role not in keep:
            continue
        part = attn.get(n)
        if part is None:
            out[n] = n
            continue
        p = params[n]
        axis = part.axis if p.ndim > part.axis else 0
        size = p.shape[axis] // len(part.parts)
        for i, lab in enumerate(part.parts):
            lo = i * size
            per_head = split == "heads" and lab in "qk" and p.ndim >= 2
            if per_head and not part.heads:
                raise ValueError(f"split='heads': the attention module of {n!r} does not say "
                                 f"its head count (no attribute {' / '.join(_HEAD_ATTRS)}); "
                                 "use split='qkv'")
            if per_head and size % part.heads:
                raise ValueError(f"split='heads': {n!r} has {size} {lab.upper()} rows, not a "
                                 f"multiple of {part.heads} heads")
            name = f"{n}.{lab}" if len(part.parts) > 1 else n
            if per_head:
                step = size // part.heads
                for h in range(part.heads):
                    idx = (slice(None),) * axis + (slice(lo + h * step, lo + (h + 1) * step),)
                    out[f"{name}.head{h}"] = (n, idx)
            elif len(part.parts) > 1:
                out[name] = (n, (slice(None),) * axis + (slice(lo, lo + size),))
            else:
                out[name] = n
    if not out:
        raise ValueError(f"no trainable parameter of the model has a role in roles "
                         f"{sorted(keep)}")
    return out


def block_roles(model: nn.Module, blocks: dict[str, object] | None = None) -> dict[str, str]:
    """The role of each block of a partition (that of its first parameter).

    Args:
        model: The network.
        blocks: A ``blocks`` mapping (``None``: one block per tensor).

    Returns:
        ``{block name: role}``.
    """
    check_model(model)
    roles = parameter_roles(model)
    if blocks is None:
        return dict(roles)
    resolve_blocks(model, blocks)  # a malformed partition is refused by name there
    out = {}
    for name, spec in blocks.items():
        first = spec[0] if isinstance(spec, list) else spec
        pname = first if isinstance(first, str) else first[0]
        out[name] = roles.get(pname, "other")
    return out


def _check_block_list(blocks: object) -> None:
    if not isinstance(blocks, list | tuple) or not all(isinstance(b, Block) for b in blocks):
        raise TypeError(f"blocks must be a list of nets.engine.blocks.Block (from "
                        f"resolve_blocks), got {type(blocks).__name__}")


def matrix_blocks(model: nn.Module, blocks: list[Block] | tuple[Block, ...]) -> list[str]:
    """Names of the blocks made only of weight matrices and embeddings, by role.

    A block is a matrix block when every piece's parameter has a role in :data:`MATRIX_ROLES`
    (:func:`parameter_roles`: read from module types and shapes), so biases and normalization
    gains are left out whatever their shape. A slice of a weight (one head, the Q of a fused
    QKV) is still a matrix block.

    Args:
        model: The network the blocks partition.
        blocks: The blocks (a list of :class:`~nets.engine.blocks.Block`, e.g. from
            :func:`~nets.engine.blocks.resolve_blocks` on ``model``).

    Raises:
        TypeError: ``model`` is not a module, or ``blocks`` is not a list or tuple of Blocks.
        ValueError: a block names a parameter that is not a trainable parameter of ``model``.
    """
    check_model(model)
    _check_block_list(blocks)
    roles = parameter_roles(model)
    out = []
    for b in blocks:
        missing = [p.param for p in b.pieces if p.param not in roles]
        if missing:
            raise ValueError(f"block {b.name!r} names {missing[0]!r}, which is not a trainable "
                             "parameter of model: resolve the blocks on the same model (blocks)")
        if all(roles[p.param] in MATRIX_ROLES for p in b.pieces):
            out.append(b.name)
    return out


def block_set(model: nn.Module, blocks: list[Block] | tuple[Block, ...], which: str) -> list[str]:
    """Names of the blocks in set ``which``: ``"all"`` or ``"matrices"`` (:func:`matrix_blocks`).

    Args:
        model: The network the blocks partition.
        blocks: The blocks.
        which: ``"all"`` or ``"matrices"``.

    Raises:
        ValueError: an unknown set, or a block naming a parameter the model does not train.
        TypeError: ``model`` is not a module, or ``blocks`` is not a list or tuple of Blocks.
    """
    if not isinstance(which, str) or which not in BLOCK_SETS:
        raise ValueError(f"which (the block set) must be one of {BLOCK_SETS}, got {which!r}")
    if which == "all":
        check_model(model)
        _check_block_list(blocks)
        return [b.name for b in blocks]
    return matrix_blocks(model, blocks)
