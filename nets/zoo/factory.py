"""Models as users have them: a ``--model`` value resolved to ``(model, loss_fn, data)``.

A model is named either by the zoo (:data:`nets.zoo.models.MODELS`) or by a *factory*
``module:function`` (a module on the path, the current directory included) or
``path/to/file.py:function``: a function returning ``(model, loss_fn, data)`` in the
:mod:`nets` conventions (``data`` a re-iterable of ``(inputs, targets)`` pairs or of mappings
with a ``"labels"`` entry, see :mod:`nets.engine.adapters`). :func:`resolve_model` is the one place
that turns such a name into a model on a device; every command taking ``--model`` calls it.

**Seeds** (``--model-seed``, :func:`seed_arguments`): a factory that declares a ``seed``
keyword is called with ``seed=<model seed>``; one that declares a ``generator`` keyword (and no
``seed``) gets a CPU ``torch.Generator`` seeded with it; a factory with neither is called with
no argument and is taken to build the model of seed 0, so asking it for another seed is an
error (``ValueError`` naming the factory, the seed and the fix: add a ``seed: int = 0``
keyword), never a silently unseeded model. The same holds for the factories of ``nets gap``
that return a :class:`nets.studies.tasks.Task`::

    def make_model(seed: int = 0):  # nets spectrum --model mine.py:make_model --model-seed 3
        g = torch.Generator().manual_seed(seed)
        ...
        return model, loss_fn, data
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from nets.engine.adapters import to_device
from nets.engine.distributed import local_device
from nets.engine.roles import block_roles, role_blocks
from nets.zoo.models import MODELS, load, partition

__all__ = ["is_factory", "load_factory", "load_model", "model_blocks", "resolve_family_size",
           "resolve_model", "seed_arguments"]

def is_factory(spec: str) -> bool:
    """Whether ``spec`` names a factory (``module:function``) rather than a zoo model.

    Args:
        spec: A ``--model`` value.

    Returns:
        ``True`` when it contains a ``:`` (a factory), ``False`` for a zoo name.
    """
    return isinstance(spec, str) and ":" in spec


def load_factory(spec: str) -> Callable:
    """Import ``module:function`` or ``file.py:function`` and return the function.

    Args:
        spec: ``module:function`` (module on the path) or ``path/to/file.py:function``.

    Returns:
        The function.

    Raises:
        ValueError: malformed spec, module that cannot be imported, missing attribute.
        TypeError: the attribute is not callable.
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"model factory must look like 'module:function' or "
                         f"'path/file.py:function', got {spec!r}")
    mod_name, func_name = spec.split(":")
    if not mod_name or not func_name:
        raise ValueError(f"model factory {spec!r} lacks a module or a function name")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            s = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(s)
            s.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(mod_name)
    except Exception as e:  # any failure while importing user code is reported, not raised raw
        raise ValueError(f"cannot import the model factory module {mod_name!r}: "
                         f"{type(e).__name__}: {e}") from e
    if not hasattr(module, func_name):
        raise ValueError(f"module {mod_name!r} has no attribute {func_name!r}")
    func = getattr(module, func_name)
    if not callable(func):
        raise TypeError(f"{spec!r} is not callable")
    return func


def seed_arguments(factory: Callable, spec: str, seed: int | None) -> dict[str, object]:
    """The keyword arguments that hand a model seed to ``factory`` (module docstring).

    Args:
        factory: The factory function.
        spec: Its ``--model`` value (for messages).
        seed: The model seed (``None``: none asked for; the factory is called as it is).

    Returns:
        ``{"seed": seed}`` if the factory declares a ``seed`` parameter, else
        ``{"generator": torch.Generator().manual_seed(seed)}`` if it declares ``generator``,
        else ``{}`` (only for ``seed`` 0 or ``None``).

    Raises:
        TypeError: ``seed`` is not a non-negative integer.
        ValueError: a seed other than 0 for a factory that takes neither keyword.
    """
    if seed is None:
        return {}
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TypeError(f"the model seed must be a non-negative integer, got {seed!r}")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a callable without a signature: takes no seed
        params = {}
    takes = {n for n, p in params.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if "seed" in takes:
        return {"seed": seed}
    if "generator" in takes:
        return {"generator": torch.Generator().manual_seed(seed)}
    if seed != 0:
        raise ValueError(f"--model-seed {seed}: the factory {spec!r} takes no seed (neither a "
                         "'seed' nor a 'generator' keyword), so it can only build its one "
                         "model (taken as seed 0); add a 'seed: int = 0' keyword to it, or "
                         "drop --model-seed")
    return {}


def load_model(spec: str, *, seed: int | None = None) -> tuple[torch.nn.Module, Callable, list]:
    """Load a user's model through its factory and check what the factory returns.

    Args:
        spec: ``module:function`` or ``path/file.py:function`` (see :func:`load_factory`); the
            function returns ``(model, loss_fn, data)``.
        seed: The model seed, handed over by :func:`seed_arguments` (``None``: the factory is
            called with no argument).

    Returns:
        ``(model, loss_fn, data)`` as the factory made them.

    Raises:
        ValueError: the factory cannot be loaded or raised an exception (the message names it),
            or takes no seed and ``seed`` is not 0.
        TypeError: the factory does not return a ``(model, loss_fn, data)`` triple with a
            ``torch.nn.Module`` and a callable loss.
    """
    factory = load_factory(spec)
    kwargs = seed_arguments(factory, spec, seed)
    try:
        made = factory(**kwargs)
    except Exception as e:  # user code: report which factory failed and how
        raise ValueError(f"the model factory {spec!r} raised {type(e).__name__}: {e}") from e
    return _check_made(spec, made)


def resolve_model(spec: str, *, seed: int = 0, device: str | torch.device = "auto",
                  dtype: torch.dtype | None = None) -> tuple[torch.nn.Module, Callable, list]:
    """``(model, loss_fn, data)`` of a zoo name or a factory, on ``device`` in ``dtype``.

    Args:
        spec: A zoo model name or a factory ``module:function`` / ``file.py:function``.
        seed: Seed of a zoo model's initialization and data; handed to a factory that takes a
            ``seed`` or ``generator`` keyword (:func:`seed_arguments`; a factory with neither
            accepts only seed 0).
        device: ``"auto"`` (``cuda:LOCAL_RANK`` where CUDA is present, else the CPU;
            :func:`nets.engine.distributed.local_device`), ``"cpu"``,
            ``"cuda:1"``, ...; the model and every tensor of the data are moved there.
        dtype: Floating dtype of the parameters and of the floating inputs (integer inputs,
            token ids, stay as they are). ``None``: float32 for zoo models, the factory's own
            dtype for user models. bfloat16/float16 models run (products in that dtype,
            Lanczos in float64, with a precision warning; :mod:`nets.engine.spectrum`).

    Returns:
        ``(model, loss_fn, data)`` with ``data`` a list of batches on ``device``.

    Raises:
        ValueError: an unknown zoo name, a factory that cannot be loaded or that raised, a
            factory without a seed keyword asked for a seed other than 0, a device that does
            not exist here (:func:`nets.engine.distributed.local_device`).
        TypeError: a factory that does not return ``(model, loss_fn, data)``, or a non-floating
            ``dtype``.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"--model must be a zoo name or 'module:function', got {spec!r}")
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    dev = local_device(device)
    if not is_factory(spec):
        if spec not in MODELS:
            raise ValueError(f"unknown model {spec!r}: use a zoo model ({', '.join(MODELS)}) or "
                             "a factory 'module:function' returning (model, loss_fn, data)")
        model, loss_fn, data = load(spec, seed=seed, device=dev, dtype=dtype or torch.float32)
    else:
        model, loss_fn, data = _place(spec, load_model(spec, seed=seed), dev, dtype)
    return model, loss_fn, data


def _place(spec: str, made: tuple, dev: torch.device, dtype: torch.dtype | None) -> tuple:
    model, loss_fn, data = made
    model = model.to(device=dev) if dtype is None else model.to(device=dev, dtype=dtype)
    if iter(data) is data:
        raise TypeError(f"the model factory {spec!r} returned a one-shot iterator as data: "
                        "return a list (or another re-iterable) of batches")
    return model, loss_fn, [to_device(b, dev, dtype=dtype) for b in data]


def _check_made(spec: str, made: object) -> tuple:
    if not (isinstance(made, tuple | list) and len(made) == 3):
        raise TypeError(f"the model factory {spec!r} must return (model, loss_fn, data), got "
                        f"{type(made).__name__}")
    model, loss_fn, data = made
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the model factory {spec!r} returned a {type(model).__name__} as the "
                        "model: return a torch.nn.Module")
    if not callable(loss_fn):
        raise TypeError(f"the model factory {spec!r} returned a non-callable loss_fn "
                        f"({type(loss_fn).__name__})")
    return model, loss_fn, data


def resolve_family_size(spec: str, size: int, *, seed: int = 0,
                        device: str | torch.device = "auto", dtype: torch.dtype | None = None
                        ) -> tuple[torch.nn.Module, Callable, list]:
    """``(model, loss_fn, data)`` of size ``size`` of a user's ladder family ``module:function``.

    A family factory is ``def family(size: int, seed: int = 0) -> (model, loss_fn, data)``: the
    size index (0 = smallest) is its first positional argument, the seed is handed over as for
    :func:`resolve_model` (:func:`seed_arguments`), and it returns what a model factory returns
    for that size. ``nets ladder --family module:function`` calls it once per ``--sizes`` index.

    Args:
        spec: ``module:function`` or ``path/file.py:function`` (:func:`load_factory`).
        size: The size index (a non-negative integer).
        seed: The model seed (a factory without a ``seed``/``generator`` keyword takes only 0).
        device: Where the model and data go (as for :func:`resolve_model`).
        dtype: Floating dtype (``None``: the factory's own).

    Returns:
        ``(model, loss_fn, data)`` with ``data`` a list of batches on ``device``.

    Raises:
        ValueError: the factory cannot be loaded or raised (e.g. an unknown size), or takes
            no seed and ``seed`` is not 0.
        TypeError: ``size`` is not a non-negative integer, the factory does not take a size
            argument, or it does not return ``(model, loss_fn, data)``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise TypeError(f"size must be a non-negative integer (a size index), got {size!r}")
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    dev = local_device(device)
    factory = load_factory(spec)
    kwargs = seed_arguments(factory, spec, seed)
    try:
        inspect.signature(factory).bind(size, **kwargs)
    except TypeError as e:
        raise TypeError(f"the ladder family factory {spec!r} must have the signature "
                        "'def family(size: int, seed: int = 0) -> (model, loss_fn, data)' "
                        f"(size index first): {e}") from e
    except ValueError:  # a callable without a signature: try it
        pass
    try:
        made = factory(size, **kwargs)
    except Exception as e:  # user code: report which factory failed and how
        raise ValueError(f"the ladder family factory {spec!r} raised {type(e).__name__} at "
                         f"size {size}: {e}") from e
    return _place(spec, _check_made(spec, made), dev, dtype)


def model_blocks(spec: str, model: torch.nn.Module, split: str = "params",
                 roles: Sequence[str] | None = None) -> dict[str, object] | None:
    """The block partition of a resolved model for the commands that take blocks.

    Both are :func:`nets.engine.roles.role_blocks` (Q/K/V and heads from module types and
    shapes); zoo models keep their block names (:func:`nets.zoo.models.partition`: fused Q/K/V
    parts named like separate layers). With ``roles``, only blocks of those roles are kept
    (:mod:`nets.engine.roles`: weight matrices, biases, normalization gains, embeddings).

    Args:
        spec: The ``--model`` value the model was resolved from.
        model: The model.
        split: ``"params"``, ``"qkv"`` or ``"heads"`` (:data:`nets.engine.roles.SPLITS`).
        roles: Roles to keep (:data:`nets.engine.roles.ROLES`), or ``None`` for all.

    Returns:
        A ``blocks`` mapping, or ``None`` for one block per tensor of every role.

    Raises:
        ValueError: an unknown split or role, or no block left.
    """
    if is_factory(spec):
        if split == "params" and roles is None:
            return None
        return role_blocks(model, roles, split=split)
    blocks = partition(spec, model, split)
    if roles is None:
        return blocks
    kept = role_blocks(model, roles)  # validates the roles
    role_of = block_roles(model, blocks)
    blocks = blocks if blocks is not None else {n: n for n in role_of}
    blocks = {b: s for b, s in blocks.items() if role_of[b] in roles}
    if not blocks or not kept:
        raise ValueError(f"no block of {spec} has a role in {list(roles)}")
    return blocks
