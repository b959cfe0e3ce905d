"""Every public name of nets, proofs and labkit has type hints and a Google-style docstring.

"Public" = every name in the ``__all__`` of every module of these packages. For a function (and
each public method of a public class): a docstring, every parameter and the return annotated, and
an ``Args:`` section naming every parameter when it has any. For a class: a docstring; its
properties: a docstring and a return annotation.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

PACKAGES = ("nets", "proofs", "labkit")

#: Public functions whose docstring still lacks an ``Args:`` section (known debt, to shrink;
#: a name fixed must be removed from here: the test fails on stale entries).
ARGS_DEBT: frozenset[str] = frozenset({
    "labkit.cache.cache_dir",
    "labkit.cache.cache_key",
    "nets.BlockSpectrum.concatenate",
    "nets.BlockSpectrum.select",
    "nets.Communicator.broadcast",
    "nets.Communicator.check_identical",
    "nets.Communicator.shard",
    "nets.Communicator.sum_int",
    "nets.Communicator.together",
    "nets.DistributedCommunicator.broadcast",
    "nets.DistributedCommunicator.check_identical",
    "nets.DistributedCommunicator.sum_int",
    "nets.DistributedCommunicator.together",
    "nets.block_set",
    "nets.dense_hessian",
    "nets.engine.adapters.batch_size",
    "nets.engine.adapters.check_modes",
    "nets.engine.adapters.first_samples",
    "nets.engine.adapters.forward",
    "nets.engine.adapters.padding_rows",
    "nets.engine.adapters.prepare_data",
    "nets.engine.adapters.split_batch",
    "nets.engine.adapters.to_device",
    "nets.engine.blocks.default_blocks",
    "nets.engine.density.zero_threshold",
    "nets.engine.distributed.local_device",
    "nets.engine.hvp.check_hvp_options",
    "nets.engine.memory.available_bytes",
    "nets.engine.memory.default_budget",
    "nets.engine.memory.peak_bytes",
    "nets.engine.memory.reset_peak",
    "nets.engine.results.load_metadata",
    "nets.engine.results.load_spectra",
    "nets.full_spectrum",
    "nets.gauss_quadrature",
    "nets.js0",
    "nets.js_matrix",
    "nets.kth_largest_eigenvalue",
    "nets.lambda10",
    "nets.matrix_blocks",
    "nets.probe_vector",
    "nets.resolve_blocks",
    "nets.studies.advise.evidence_recipe",
})


def _modules(pkg: str) -> Iterator[ModuleType]:
    root = importlib.import_module(pkg)
    yield root
    for info in pkgutil.walk_packages(root.__path__, f"{pkg}."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def _public() -> dict[str, object]:
    out: dict[str, object] = {}
    seen: set[int] = set()
    for pkg in PACKAGES:
        for mod in _modules(pkg):
            for name in getattr(mod, "__all__", ()):
                obj = getattr(mod, name)
                if id(obj) not in seen and (inspect.isclass(obj) or inspect.isfunction(obj)):
                    seen.add(id(obj))
                    out[f"{mod.__name__}.{name}"] = obj
    return out


PUBLIC = _public()


def _args_section(doc: str) -> str | None:
    m = re.search(r"^(Args|Arguments):\s*$(?P<body>(\n(\s+.*|\s*))*)", doc, re.M)
    return None if m is None else m.group("body")


def _function_problems(f: Callable, where: str, *, is_init: bool = False) -> list[str]:
    sig = inspect.signature(f)
    doc = inspect.getdoc(f)
    params = [p for n, p in sig.parameters.items() if n not in ("self", "cls")]
    bad = [f"{where}: parameter {p.name!r} not annotated" for p in params
           if p.annotation is inspect.Parameter.empty]
    if not is_init and sig.return_annotation is inspect.Signature.empty:
        bad.append(f"{where}: return not annotated")
    if is_init:
        return bad  # documented in the class docstring
    if not doc:
        return [*bad, f"{where}: no docstring"]
    if params and where not in ARGS_DEBT:
        body = _args_section(doc)
        if body is None:
            bad.append(f"{where}: no 'Args:' section")
        else:
            bad += [f"{where}: 'Args:' does not describe {p.name!r}" for p in params
                    if not re.search(rf"^\s+\**{re.escape(p.name)}\b.*:", body, re.M)]
    return bad


def _problems(where: str, obj: object) -> list[str]:
    if inspect.isfunction(obj):
        return _function_problems(obj, where)
    bad = [] if inspect.getdoc(obj) else [f"{where}: no class docstring"]
    for name, attr in vars(obj).items():
        if isinstance(attr, property):
            if not attr.__doc__:
                bad.append(f"{where}.{name}: property without docstring")
            if attr.fget is not None and \
                    inspect.signature(attr.fget).return_annotation is inspect.Signature.empty:
                bad.append(f"{where}.{name}: property return not annotated")
            continue
        f = attr.__func__ if isinstance(attr, staticmethod | classmethod) else attr
        if not inspect.isfunction(f) or f.__qualname__.split(".")[0] != obj.__name__:
            continue  # not defined here (e.g. generated by dataclass)
        if name == "__init__":
            bad += _function_problems(f, f"{where}.__init__", is_init=True)
        elif not name.startswith("_"):
            bad += _function_problems(f, f"{where}.{name}")
    return bad


def test_every_public_name_is_typed_and_documented():
    assert len(PUBLIC) > 150  # the walk found the packages' public names
    bad = [p for where, obj in sorted(PUBLIC.items()) for p in _problems(where, obj)]
    assert not bad, f"{len(bad)} problems:\n" + "\n".join(bad)


def _resolve(where: str) -> object | None:
    if where in PUBLIC:
        return PUBLIC[where]
    owner, _, attr = where.rpartition(".")
    return getattr(PUBLIC[owner], attr, None) if owner in PUBLIC else None


def test_args_debt_is_not_stale():
    gone = [w for w in sorted(ARGS_DEBT) if _resolve(w) is None]
    fixed = [w for w in sorted(ARGS_DEBT) if w not in gone
             and _args_section(inspect.getdoc(_resolve(w)) or "") is not None]
    assert not gone and not fixed, f"remove from ARGS_DEBT: gone {gone}, documented {fixed}"


@pytest.mark.parametrize(("doc", "ok"), [
    ('"""Add.\n\n    Args:\n        a: first.\n        b: second.\n    """', True),
    ('"""Add.\n\n    Args:\n        a: first.\n    """', False),
    ('"""Add a and b."""', False),
])
def test_the_checker_catches_missing_args(doc, ok):
    ns: dict = {}
    exec(f"def add(a: int, b: int) -> int:\n    {doc}\n    return a + b\n", ns)
    assert (_function_problems(ns["add"], "add") == []) is ok
