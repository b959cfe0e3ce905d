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
is an attention module. Its head geometry is read from its attributes, then from its ``config``
(Hugging Face modules keep only some of it as attributes): the query head count from
``num_heads``, ``num_attention_heads``, ``n_head``, ``n_heads`` or ``heads``; the key/value
head count (grouped-query attention) from ``num_key_value_heads``, ``num_kv_heads`` or
``n_kv_heads`` (default: the query head count); the head width from ``head_dim``,
``head_size`` or ``attention_head_size`` (default: a projection's rows over its head count).
Its projections are

* *separate*: child linear layers named ``q``, ``query``, ``q_proj``, ``query_proj``, ``q_lin``,
  ``to_q`` or ``wq`` (and likewise for K and V); per head, a K projection of grouped-query
  attention has its own (smaller) head count;
* *fused, stacked*: all Q rows, then all K rows, then all V rows along the output axis:
  ``nn.MultiheadAttention.in_proj_*`` and a child named ``qkv``, ``c_attn`` (GPT-2's ``Conv1D``,
  layout ``(E, 3E)``; nanoGPT), ``in_proj``, ``Wqkv``, ``qkv_proj`` (Phi-3, with grouped-query
  sizes) or ``to_qkv``, of ``3E`` rows or of the rows the geometry gives;
* *fused, per head*: each head's Q, K and V rows in turn (:data:`FUSED_LAYOUTS`: GPT-NeoX and
  Pythia, BLOOM);
* *fused, grouped*: for each of the ``G`` key/value heads, the rows of its ``H/G`` query heads,
  then its K rows, then its V rows (Falcon-40B's "new decoder architecture"). Falcon's layout
  follows its config, which :data:`FUSED_LAYOUTS` reads off the module: grouped under the new
  architecture, else stacked ``(H d, d, d)`` with multi-query attention, else per head;
* *fused, sharded*: ``S`` model-parallel shards in turn, each holding the rows of its ``H/S``
  query heads, then of their value heads, then of their key heads (CodeGen: ``S`` is its
  attention's ``mp_num``, 4, and the order within a shard is Q, V, K);
* *fused, unknown*: any other fused projection, and the classes whose layout is none of these.
  Splitting one is refused with the fix (pass the blocks yourself,
  :func:`nets.engine.blocks.split_parameter`), never guessed: a wrong guess would label K rows
  as Q and give JS distances of blocks that do not exist.

``split="qkv"`` makes Q, K and V separate blocks (a per-head layout's Q block is one piece per
head); ``split="heads"`` further splits the Q and K weights into one block per head along the
output axis (as in Adam-mini); V stays whole. An attention module with linear layers none of
which is recognized as Q, K or V keeps them whole, with a warning naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from nets.engine.blocks import Block, resolve_blocks
from nets.engine.checks import check_model
from nets.engine.userwarn import warn

__all__ = ["BLOCK_SETS", "FUSED_LAYOUTS", "LAYOUTS", "MATRIX_ROLES", "ROLES", "SPLITS",
           "AttentionPart", "attention_parts", "block_roles", "block_set", "matrix_blocks",
           "parameter_roles", "role_blocks"]

ROLES = ("weight", "bias", "norm", "embedding", "other")
#: The block sets JS0 is reported on: every block, or the weight matrices only.
BLOCK_SETS = ("all", "matrices")
#: The roles whose blocks form the ``"matrices"`` block set.
MATRIX_ROLES = ("weight", "embedding")
SPLITS = ("params", "qkv", "heads")

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.LocalResponseNorm,
          nn.RMSNorm)
_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_head", "n_heads", "heads")
_KV_HEAD_ATTRS = ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "kv_heads")
_HEAD_DIM_ATTRS = ("head_dim", "head_size", "attention_head_size")
_SEPARATE = {"q": re.compile(r"(q|query|q_proj|query_proj|q_lin|to_q|wq)$"),
             "k": re.compile(r"(k|key|k_proj|key_proj|k_lin|to_k|wk)$"),
             "v": re.compile(r"(v|value|v_proj|value_proj|v_lin|to_v|wv)$")}
#: Names of fused Q/K/V projections whose rows are stacked (all Q, all K, all V).
_STACKED = re.compile(r"(qkv|c_attn|in_proj|wqkv|qkv_proj|to_qkv)$", re.IGNORECASE)


def _falcon_layout(attention: nn.Module) -> str:
    """Falcon's fused ``query_key_value`` layout, as its ``forward`` reads the rows: grouped
    under the new decoder architecture (``view(..., kv_heads, H/G + 2, head_dim)``), stacked
    ``(H d, d, d)`` with multi-query attention, else per head (``unflatten(-2, (H, 3))``)."""
    if getattr(attention, "new_decoder_architecture", False):
        return "grouped"
    return "stacked" if getattr(attention, "multi_query", False) else "per-head"


#: Fused Q/K/V layouts by attention class, where the class decides it: a layout name,
#: ``"per-head"`` (each head's Q, K and V rows in turn: ``view(..., heads, 3, head_dim)``),
#: ``"stacked"``, ``"grouped"``, ``"sharded"`` (module docstring; the shard count is the
#: module's ``mp_num``) or ``"unknown"`` (none of them: splitting is refused), or a function of
#: the attention module that returns one (where the layout follows the model's config: Falcon).
FUSED_LAYOUTS = {"GPTNeoXAttention": "per-head", "BloomAttention": "per-head",
                 "FalconAttention": _falcon_layout, "CodeGenAttention": "sharded"}
LAYOUTS = ("separate", "stacked", "per-head", "grouped", "sharded", "unknown")
#: The fused layouts that interleave Q, K and V rows by head groups (:meth:`AttentionPart.rows`).
_INTERLEAVED = ("per-head", "grouped", "sharded")


@dataclass(frozen=True)
class AttentionPart:
    """Where Q, K, V live in one attention parameter.

    Attributes:
        parts: ``("q", "k", "v")`` for a fused tensor, or the one part (``("q",)``) it holds.
        axis: The output axis (0 for linear layout, 1 for GPT-2 ``Conv1D`` weights).
        heads: Number of query heads of the attention module, or ``None`` if it does not say.
        layout: One of :data:`LAYOUTS`: ``"separate"`` (one part), ``"stacked"``,
            ``"per-head"``, ``"grouped"``, ``"sharded"`` or ``"unknown"`` (fused in an order
            nets does not know).
        sizes: Rows of each part along ``axis`` (stacked and separate), e.g. ``(H d, G d, G d)``
            for ``H`` query and ``G`` key/value heads of width ``d``; per head, grouped or
            sharded, the whole tensor's rows (``(3 H d,)``, ``((H + 2 G) d,)``); ``()`` where
            the layout is unknown.
        head_dim: Width ``d`` of one head, or ``None`` if the module does not say.
        kv_heads: Number of key/value heads, or ``None`` if the module does not say.
        owner: Class name of the attention module (the key of :data:`FUSED_LAYOUTS`).
        shards: Model-parallel shards of a sharded layout (``None`` otherwise).
    """

    parts: tuple[str, ...]
    axis: int
    heads: int | None
    layout: str = "stacked"
    sizes: tuple[int, ...] = ()
    head_dim: int | None = None
    kv_heads: int | None = None
    owner: str = ""
    shards: int | None = None

    def part_heads(self, label: str) -> int | None:
        """Number of heads of part ``label``, or ``None`` where the module does not say.

        Args:
            label: ``"q"`` (query heads), ``"k"`` or ``"v"`` (key/value heads: fewer than the
                query heads under grouped-query attention).
        """
        if self.layout in _INTERLEAVED:
            groups, segments, _ = self._groups()
            return groups * dict(segments)[label]
        size = self.sizes[self.parts.index(label)]
        if self.head_dim:
            return size // self.head_dim if size % self.head_dim == 0 else None
        heads = self.heads if label == "q" else (self.kv_heads or self.heads)
        return heads if heads and size % heads == 0 else None

    def rows(self, label: str, head: int | None = None) -> list[tuple[int, int]]:
        """Row ranges ``[lo, hi)`` along ``axis`` of part ``label``, or of one of its heads.

        Args:
            label: ``"q"``, ``"k"`` or ``"v"`` (one of :attr:`parts`).
            head: A head of that part (``0 ≤ head <`` :meth:`part_heads`), or ``None`` for all.

        Raises:
            ValueError: an unknown layout, or ``head`` given where the head count is unknown.
        """
        if self.layout == "unknown":
            raise ValueError("the order of the rows of a fused projection of unknown layout")
        if self.layout in _INTERLEAVED:
            return self._interleaved_rows(label, head)
        lo = sum(self.sizes[:self.parts.index(label)])
        size = self.sizes[self.parts.index(label)]
        if head is None:
            return [(lo, lo + size)]
        heads = self.part_heads(label)
        if not heads:
            raise ValueError(f"part {label!r} does not say its head count")
        width = size // heads
        return [(lo + head * width, lo + (head + 1) * width)]

    def _groups(self) -> tuple[int, tuple[tuple[str, int], ...], int]:
        """``(G, segments, d)`` of an interleaved layout: ``G`` groups of rows in turn, each the
        ``segments`` ``(part, heads)`` in order, every head ``d`` rows. Per head, every query
        head is its own group ``(q 1, k 1, v 1)``; grouped, one group per key/value head
        ``(q H/G, k 1, v 1)``; sharded, one group per shard ``(q H/S, v H/S, k H/S)``."""
        if self.layout == "per-head":
            return self.heads, (("q", 1), ("k", 1), ("v", 1)), self.sizes[0] // (3 * self.heads)
        if self.layout == "grouped":
            per = self.heads // self.kv_heads
            return self.kv_heads, (("q", per), ("k", 1), ("v", 1)), self.head_dim
        per = self.heads // self.shards
        return self.shards, (("q", per), ("v", per), ("k", per)), self.sizes[0] // (3 * self.heads)

    def _interleaved_rows(self, label: str, head: int | None) -> list[tuple[int, int]]:
        """:meth:`rows` of the interleaved layouts (:meth:`_groups`): group ``g`` holds rows
        ``[g s, (g + 1) s)`` with ``s`` the rows of its segments; head ``h`` of a part with
        ``n`` heads per group is the ``(h mod n)``-th of that part's segment in group
        ``⌊h / n⌋``."""
        groups, segments, d = self._groups()
        stride = sum(n for _, n in segments) * d
        offset = 0
        for lab, per in segments:
            if lab == label:
                break
            offset += per * d
        picked = range(groups * per) if head is None else [head]
        return [((h // per) * stride + offset + (h % per) * d,
                 (h // per) * stride + offset + (h % per + 1) * d) for h in picked]


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


def _first_int(obj: object, attrs: tuple[str, ...]) -> int | None:
    for a in attrs:
        v = getattr(obj, a, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _geometry(m: nn.Module) -> tuple[int | None, int | None, int | None]:
    """``(query heads, key/value heads, head width)`` of an attention module, ``None`` where
    neither the module nor its ``config`` says."""
    cfg = getattr(m, "config", None)
    heads = _first_int(m, _HEAD_ATTRS) or _first_int(cfg, _HEAD_ATTRS)
    kv = _first_int(m, _KV_HEAD_ATTRS) or _first_int(cfg, _KV_HEAD_ATTRS)
    dim = _first_int(m, _HEAD_DIM_ATTRS) or _first_int(cfg, ("head_dim",))
    return heads, kv, dim


def _fused(parent: nn.Module, child: str, out_dim: int, in_dim: int, axis: int,
           geometry: tuple[int | None, int | None, int | None]) -> AttentionPart | None:
    """The layout of a fused Q/K/V projection ``child`` of ``parent`` (its
    :func:`_geometry`), ``None`` if not fused."""
    heads, kv, dim = geometry
    grouped = (heads * dim, (kv or heads) * dim, (kv or heads) * dim) if heads and dim else None
    named = _STACKED.fullmatch(child) is not None
    if not (named or out_dim == 3 * in_dim or (grouped and out_dim == sum(grouped))):
        return None  # not sized or named as a fused Q/K/V projection (an output projection)
    owner = type(parent).__name__
    layout = FUSED_LAYOUTS.get(owner) or ("stacked" if named else "unknown")
    rule = callable(layout)
    if rule:
        layout = layout(parent)
    if layout not in LAYOUTS[1:]:
        raise ValueError(f"FUSED_LAYOUTS[{owner!r}] {'returned' if rule else 'is'} "
                         f"{layout!r}; it must be one of {', '.join(map(repr, LAYOUTS[1:]))} "
                         "(or a function of the attention module returning one)")
    if layout == "per-head" and not (heads and out_dim % (3 * heads) == 0):
        layout = "unknown"
    if layout == "grouped" and not (heads and kv and dim and heads % kv == 0
                                    and out_dim == (heads + 2 * kv) * dim):
        layout = "unknown"
    shards = getattr(parent, "mp_num", None) if layout == "sharded" else None
    if layout == "sharded" and not (isinstance(shards, int) and shards > 0 and heads
                                    and heads % shards == 0 and out_dim % (3 * heads) == 0):
        layout, shards = "unknown", None
    sizes: tuple[int, ...] = (out_dim,) if layout in _INTERLEAVED else ()
    if layout == "stacked":
        if grouped and out_dim == sum(grouped):
            sizes = grouped
        elif out_dim % 3 == 0:
            sizes = (out_dim // 3,) * 3
        else:
            layout = "unknown"
    return AttentionPart(("q", "k", "v"), axis, heads, layout, sizes, dim, kv, owner, shards)


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
            e, h = m.embed_dim, m.num_heads
            if leaf in ("in_proj_weight", "in_proj_bias"):
                out[n] = AttentionPart(("q", "k", "v"), 0, h, "stacked", (e, e, e), e // h, h,
                                       type(m).__name__)
            elif leaf in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                out[n] = AttentionPart((leaf[0],), 0, h, "separate", (p.shape[0],), e // h, h,
                                       type(m).__name__)
            continue
        if not (isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"):
            continue
        parent_name, _, child = mname.rpartition(".")
        parent = by_module.get(parent_name)
        if parent is None or "Attention" not in type(parent).__name__:
            continue
        conv1d = type(m).__name__ == "Conv1D"
        axis = 1 if conv1d and leaf == "weight" else 0
        w = p if p.ndim == 2 else getattr(m, "weight", None)
        if w is None or w.ndim != 2:
            continue
        out_dim, in_dim = (w.shape[1], w.shape[0]) if conv1d else (w.shape[0], w.shape[1])
        geometry = _geometry(parent)
        fused = _fused(parent, child, out_dim, in_dim, axis, geometry)
        if fused is not None:
            out[n] = fused
            continue
        heads, kv, dim = geometry
        for part, pat in _SEPARATE.items():
            if pat.fullmatch(child):
                out[n] = AttentionPart((part,), axis, heads, "separate", (out_dim,), dim, kv,
                                       type(parent).__name__)
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
        ValueError: an unknown role or split, no parameter left, ``split="heads"`` on an
            attention module whose head count is unknown or does not divide its width, or a
            split of a fused projection whose layout is unknown (module docstring).
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
        if part.layout == "unknown":
            raise ValueError(
                f"split={split!r}: {n!r} is a fused Q/K/V projection of {part.owner} whose "
                "row order nets does not know (a guess could call K rows Q); set "
                f"nets.FUSED_LAYOUTS[{part.owner!r}] to 'per-head', 'stacked', 'grouped' or "
                "'sharded' if "
                "you know it, use split='params', or pass blocks yourself, e.g. from "
                "nets.split_parameter(name, shape, ['q', 'k', 'v'])")
        for lab in part.parts:
            per_head = split == "heads" and lab in "qk" and p.ndim >= 2
            heads = part.part_heads(lab)
            if per_head and not part.heads:
                raise ValueError(f"split='heads': the attention module of {n!r} does not say "
                                 f"its head count (no attribute {' / '.join(_HEAD_ATTRS)}, "
                                 "in it or its config); use split='qkv'")
            if per_head and not heads:
                raise ValueError(f"split='heads': {n!r} has "
                                 f"{part.sizes[part.parts.index(lab)]} {lab.upper()} rows, not "
                                 f"a multiple of its head width or {part.heads} heads")
            name = f"{n}.{lab}" if len(part.parts) > 1 else n
            groups = ({f"{name}.head{h}": part.rows(lab, h) for h in range(heads)} if per_head
                      else {name: part.rows(lab)})
            for bname, ranges in groups.items():
                pieces = [(n, (slice(None),) * axis + (slice(lo, hi),)) for lo, hi in ranges]
                whole = len(part.parts) == 1 and not per_head
                out[bname] = n if whole else pieces[0] if len(pieces) == 1 else pieces
    if not out:
        raise ValueError(f"no trainable parameter of the model has a role in roles "
                         f"{sorted(keep)}")
    if split != "params":
        _warn_unrecognized_attention(model, attn)
    return out


def _warn_unrecognized_attention(model: nn.Module, attn: dict[str, AttentionPart]) -> None:
    """Warn about attention modules whose linear layers hold no recognized Q, K or V."""
    found = {n.rpartition(".")[0].rpartition(".")[0] for n in attn}  # the projections' parents
    for name, m in model.named_modules():
        if "Attention" not in type(m).__name__ or isinstance(m, nn.MultiheadAttention):
            continue
        layers = [c for c, child in m.named_children()
                  if isinstance(child, nn.Linear) or type(child).__name__ == "Conv1D"]
        if layers and name not in found:
            warn(f"attention module {name or '(the model)'!r} ({type(m).__name__}): none of "
                 f"its linear layers ({', '.join(layers)}) is recognized as a Q, K or V "
                 "projection, so they stay whole blocks; pass blocks yourself to split them "
                 "(nets.split_parameter)")


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
