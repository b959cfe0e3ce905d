"""Parameter blocks: which coordinates of the parameter vector form one Hessian block.

A block ``D_l`` is a set of coordinates of the flattened parameter vector ``w``; its Hessian
block is the principal submatrix ``[∇²L(w)]_ll = ∂²L / ∂w_l ∂w_l``. Here a block is a list of
*pieces*, each a parameter tensor (by its ``named_parameters`` name) and an optional index into
it (a tuple of slices). The block's vector ``v_l`` concatenates the pieces' flattened entries in
order, so ``dim = Σ piece sizes``.

User partitions are given as a mapping ``{block name: spec}`` where ``spec`` is

* a parameter name (``"h.0.attn.qkv.weight"``): the whole tensor;
* a ``(name, index)`` pair: part of a tensor (``index`` a slice or tuple of slices);
* a list of the two forms above: a block made of several pieces.

:func:`split_parameter` builds the specs that split a fused tensor (QKV) into equal parts along
one axis (Q, K, V, or per-head blocks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nets.engine.checks import check_int, check_model

__all__ = ["Block", "Piece", "check_blocks", "default_blocks", "full_block",
           "resolve_blocks", "split_parameter"]


@dataclass(frozen=True)
class Piece:
    """Part of one parameter tensor.

    Attributes:
        param: Name of the parameter in ``model.named_parameters()``.
        index: Tuple of slices selecting the part, or ``()`` for the whole tensor.
        shape: Shape of the selected part.
    """

    param: str
    index: tuple[slice, ...]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of coordinates of the piece (the product of its shape)."""
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class Block:
    """A named block of parameter coordinates (ordered pieces).

    Attributes:
        name: Block name.
        pieces: The pieces whose flattened entries, concatenated, form ``w_l``.
    """

    name: str
    pieces: tuple[Piece, ...]

    @property
    def dim(self) -> int:
        """Number of coordinates of the block (the sum over its pieces)."""
        return sum(p.size for p in self.pieces)

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the parameters the block takes pieces of, in order, without repeats."""
        return tuple(dict.fromkeys(p.param for p in self.pieces))


def _as_index(index: object, name: str) -> tuple[slice, ...]:
    if index is None:
        return ()
    if isinstance(index, slice):
        index = (index,)
    if not (isinstance(index, tuple) and all(isinstance(s, slice) for s in index)):
        raise TypeError(f"block index for parameter {name!r} must be a slice or a tuple of "
                        f"slices, got {index!r}")
    for s in index:
        for part in (s.start, s.stop, s.step):
            if part is not None and (isinstance(part, bool)
                                     or not isinstance(part, int | np.integer)):
                raise TypeError(f"block index for parameter {name!r}: slice bounds must be "
                                f"integers or None, got {s!r}")
        if s.step is not None and s.step < 1:
            raise ValueError(f"block index for parameter {name!r}: slice steps must be "
                             f"positive, got {s!r}")
    return index


def _piece(spec: object, params: Mapping[str, torch.Tensor], block: str) -> Piece:
    if isinstance(spec, str):
        name, index = spec, ()
    elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        name, index = spec[0], _as_index(spec[1], spec[0])
    else:
        raise TypeError(f"block {block!r}: a piece must be a parameter name or a (name, index) "
                        f"pair, got {spec!r}")
    if name not in params:
        raise ValueError(f"block {block!r} names parameter {name!r}, which the model does not "
                         f"have (parameters: {', '.join(params) or 'none'})")
    p = params[name]
    if len(index) > p.ndim:
        raise ValueError(f"block {block!r}: index {index!r} has more axes than parameter "
                         f"{name!r} of shape {tuple(p.shape)}")
    shape = tuple(torch.empty(p.shape, device="meta")[index].shape)
    if 0 in shape:
        raise ValueError(f"block {block!r}: index {index!r} selects no entry of parameter "
                         f"{name!r} of shape {tuple(p.shape)}")
    return Piece(name, index, shape)


def _trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that require a gradient, by name; refuses a model without any."""
    check_model(model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("the model has no trainable parameters: there is no Hessian to study")
    return params


def default_blocks(model: torch.nn.Module) -> list[Block]:
    """One block per named parameter tensor that requires a gradient.

    Args:
        model: The model.
    """
    return [Block(n, (Piece(n, (), tuple(p.shape)),)) for n, p in _trainable(model).items()]


def full_block(model: torch.nn.Module) -> Block:
    """The block ``"full"`` of every trainable parameter: its Hessian block is ``∇²L`` itself.

    Args:
        model: The model.

    Raises:
        ValueError: the model has no trainable parameters.
    """
    return Block("full", tuple(Piece(n, (), tuple(p.shape))
                               for n, p in _trainable(model).items()))


def resolve_blocks(model: torch.nn.Module, blocks: Mapping[str, object] | None) -> list[Block]:
    """Turn a user partition (or ``None``: one block per tensor) into :class:`Block` objects.

    Args:
        model: The model whose parameters are partitioned.
        blocks: ``{block name: parameter name, list of names, or (name, slices) pieces}``
            (see the module docstring), or ``None``.

    Raises:
        ValueError: no parameters, an empty partition, an unknown parameter, an empty block,
            or two blocks sharing a coordinate (blocks must be disjoint).
        TypeError: ``model`` is not a module, or a malformed specification.
    """
    if blocks is None:
        return default_blocks(model)
    params = _trainable(model)
    if not isinstance(blocks, Mapping):
        raise TypeError(f"blocks must be a mapping {{name: spec}} or None, got "
                        f"{type(blocks).__name__}")
    if not blocks:
        raise ValueError("blocks is an empty mapping: give at least one block")
    out: list[Block] = []
    owner: dict[str, torch.Tensor] = {}
    for bname, spec in blocks.items():
        if not isinstance(bname, str):
            raise TypeError(f"block names must be strings, got {bname!r}")
        specs: Sequence[object]
        if isinstance(spec, list):
            specs = spec
        else:
            specs = [spec]
        if not specs:
            raise ValueError(f"block {bname!r} names no parameter")
        pieces = tuple(_piece(s, params, bname) for s in specs)
        for pc in pieces:
            mask = owner.setdefault(pc.param, torch.zeros(params[pc.param].shape, dtype=torch.int8))
            if mask[pc.index].any():
                raise ValueError(f"block {bname!r} overlaps another block on parameter "
                                 f"{pc.param!r}: blocks must be disjoint")
            mask[pc.index] = 1
        out.append(Block(bname, pieces))
    return out


def split_parameter(name: str, shape: Sequence[int], parts: int | Sequence[str], *,
                    dim: int = 0, prefix: str | None = None) -> dict[str, tuple[str, tuple]]:
    """Specs that split one parameter into equal parts along axis ``dim``.

    Example: a fused QKV weight of shape ``(3E, E)`` split into Q, K, V blocks is
    ``split_parameter("attn.qkv.weight", (3*E, E), ["q", "k", "v"])``; a Q weight ``(E, E)``
    split into H per-head blocks (rows of the head) is ``split_parameter(n, (E, E), H)``.

    Args:
        name: Parameter name.
        shape: Its shape.
        parts: Number of equal parts, or their names.
        dim: Axis along which to split.
        prefix: Prefix of the block names (default: ``name``).

    Returns:
        ``{f"{prefix}.{part}": (name, index)}``, to merge into a ``blocks`` mapping.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a parameter name (non-empty str), got {name!r}")
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if isinstance(shape, str | bytes) or not isinstance(shape, Sequence) or not shape:
        raise TypeError(f"shape must be a non-empty sequence of sizes, got {shape!r}")
    shape = tuple(check_int("shape entry", s, minimum=1) for s in shape)
    if isinstance(parts, int | np.integer) and not isinstance(parts, bool):
        labels = [str(i) for i in range(check_int("parts", parts, minimum=1,
                                                     maximum=max(shape)))]
    elif isinstance(parts, Sequence) and not isinstance(parts, str | bytes) and all(
            isinstance(p, str) and p for p in parts):
        labels = list(parts)
    else:
        raise TypeError(f"parts must be a number of parts or a sequence of part names, got "
                        f"{parts!r}")
    n = len(labels)
    if n < 1 or len(set(labels)) != n:
        raise ValueError(f"parts must name at least one part, each once, got {labels}")
    dim = check_int("dim", dim)
    if not -len(shape) <= dim < len(shape):
        raise ValueError(f"dim {dim} out of range for shape {tuple(shape)}")
    size = shape[dim]
    if size % n:
        raise ValueError(f"axis dim={dim} of {name!r} (size {size}) does not split into {n} "
                         "equal parts (parts)")
    step = size // n
    dim = dim % len(shape)
    prefix = name if prefix is None else prefix
    out = {}
    for i, lab in enumerate(labels):
        index = (slice(None),) * dim + (slice(i * step, (i + 1) * step),)
        out[f"{prefix}.{lab}"] = (name, index)
    return out


def check_blocks(blocks: object, params: Mapping[str, torch.Tensor]) -> None:
    """Check that ``blocks`` is a non-empty sequence of :class:`Block` over ``params``: unique
    names, every piece a parameter of ``params`` whose index selects the piece's shape, and
    real floating parameters (the Hessian ``∂²L / ∂w_l ∂w_l`` is taken over real coordinates).

    Args:
        blocks: The blocks, as :func:`resolve_blocks` builds them.
        params: The model's parameters by name.

    Raises:
        TypeError: ``blocks`` is not a non-empty list or tuple of :class:`Block`, or a piece's
            parameter is not real floating.
        ValueError: Two blocks share a name, a block has no piece, a piece names a parameter
            ``params`` lacks, or its index does not select its shape.
    """
    if not isinstance(blocks, list | tuple) or not blocks:
        raise TypeError(f"blocks must be a non-empty list of nets.engine.blocks.Block (build it "
                        f"with resolve_blocks), got {type(blocks).__name__}")
    names = set()
    for b in blocks:
        if not isinstance(b, Block):
            raise TypeError(f"blocks must hold nets.engine.blocks.Block objects (build them with "
                            f"resolve_blocks), got {type(b).__name__}")
        if b.name in names:
            raise ValueError(f"blocks: two blocks are named {b.name!r}")
        names.add(b.name)
        if not b.pieces:
            raise ValueError(f"block {b.name!r} has no piece")
        for pc in b.pieces:
            p = params.get(pc.param)
            if p is None:
                raise ValueError(f"block {b.name!r} names parameter {pc.param!r}, which the "
                                 "model does not have")
            if tuple(torch.empty(p.shape, device="meta")[pc.index].shape) != tuple(pc.shape):
                raise ValueError(f"block {b.name!r}: piece of {pc.param!r} has shape "
                                 f"{pc.shape}, which its index does not select from "
                                 f"{tuple(p.shape)}")
            if not p.is_floating_point():
                raise TypeError(f"block {b.name!r}: parameter {pc.param!r} is {p.dtype}; the "
                                "Hessian is taken with respect to real floating parameters: "
                                "hold a complex parameter as its real and imaginary parts "
                                "(torch.view_as_real) or leave it out of the blocks")
