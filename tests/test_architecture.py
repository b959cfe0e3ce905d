"""The dependency rules of the project, read from the source with ``ast`` and enforced.

The architecture, as data (each rule says who may not import what, and why):

* no import cycle between modules, counting module-level AND function-level imports (a lazy
  import does not break a cycle, it hides it). A package ``__init__`` may import its own
  submodules; a submodule that imports its package back (``from nets import x``) closes a cycle.
* :data:`LAYERS`: the layers of ``nets`` (engine < zoo < studies < cli) and the command lines,
  figures and plumbing around them.
* :data:`FORBIDDEN`: heavy or higher-level dependencies a package must not import.
* :data:`ALLOWED`: the few documented exceptions.
* No function-level import of a first-party module (other than :data:`ALLOWED`): imports are
  visible at the top of each module.
* Only command-line modules (:data:`CLI`) import another command line or ``argparse``.

A subprocess check confirms the rules at run time: ``import quadlab, proofs, labkit`` loads
neither torch nor matplotlib, ``import nets`` does not load numba.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("quadlab", "nets", "proofs", "labkit", "figures")
CLI = ("*.cli", "*.cli.*", "*.__main__")  # command-line modules: parse and print only


@dataclass(frozen=True)
class Rule:
    """Modules matching ``importer`` must not import modules matching ``imported``.

    Patterns are :func:`fnmatch` patterns on dotted module names (``nets.engine*`` matches the
    package and everything below it). ``module_level_only``: the rule covers imports executed at
    import time only (a function may import an optional heavy dependency when it is called).
    """

    importer: str
    imported: str
    why: str
    module_level_only: bool = False


def _tree(name: str) -> tuple[str, str]:
    return name, f"{name}.*"


FORBIDDEN: tuple[Rule, ...] = (
    # torch-free and matplotlib-free packages
    *(Rule(p, h, f"{p.split('*')[0]} imports without {h.split('*')[0]}", True)
      for p in ("quadlab*", "proofs*", "labkit*") for h in ("torch*", "matplotlib*")),
    # nets imports without numba (numba is quadlab's kernel compiler)
    Rule("nets*", "numba*", "nets imports without numba", True),
    Rule("nets*", "quadlab*", "nets must not pull quadlab (and numba) in"),
    Rule("labkit*", "numba*", "labkit is plumbing with no heavy dependencies", True),
    # plumbing knows no package above it
    *(Rule("labkit*", f"{p}*", "labkit is below every package") for p in
      ("quadlab", "nets", "proofs", "figures")),
    # quadlab and proofs know no networks
    Rule("quadlab*", "nets*", "quadlab is torch-free"),
    Rule("proofs*", "nets*", "proofs are torch-free"),
    # the engine knows no zoo, no study and no command line
    *(Rule("nets.engine*", f"nets.{p}*", f"the spectra engine must not import nets.{p}")
      for p in ("zoo", "studies", "cli")),
    # the zoo knows no study
    Rule("nets.zoo*", "nets.studies*", "the zoo is below the studies"),
    Rule("nets.zoo*", "nets.cli*", "the zoo is below the command line"),
    # nothing in the libraries imports figures
    *(Rule(f"{p}*", "figures*", "figures draw the libraries' results, not the reverse")
      for p in ("quadlab", "nets", "proofs", "labkit")),
)

#: Layers: a module of a layer may import only modules of the same or a lower layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("labkit*",),
    ("quadlab.*", "proofs.*", "nets.engine*"),
    ("nets.zoo*",),
    ("nets.studies*",),
)

#: Documented exceptions: (importer, imported, why). They are exact module names.
ALLOWED: tuple[tuple[str, str, str], ...] = (
    ("quadlab.cli.app", "nets.engine.distributed",
     "`quadlab sweep` under torchrun shares its grid out through the nets communicator; the "
     "import happens only when WORLD_SIZE > 1, so quadlab itself stays torch-free"),
)


@dataclass(frozen=True)
class Edge:
    """One import statement: ``importer`` imports ``imported`` at ``line``."""

    importer: str
    imported: str
    line: int
    function_level: bool
    first_party: bool

    def __str__(self) -> str:
        where = "function-level" if self.function_level else "module-level"
        return f"{self.importer}:{self.line} imports {self.imported} ({where})"


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_pkg else module.split(".")[:-1]
        parts = parts[:len(parts) - (node.level - 1)]
        base = ".".join(parts + ([base] if base else []))
    out = []
    for a in node.names:
        full = f"{base}.{a.name}"
        out.append(full if full in MODULES else base)  # `from pkg import submodule`
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, mod: str, is_pkg: bool, in_function: bool, edges: list[Edge]) -> None:
    for ch in ast.iter_child_nodes(node):
        if isinstance(ch, ast.If) and _is_type_checking(ch):
            continue  # annotations only, never executed
        if isinstance(ch, ast.Import | ast.ImportFrom):
            edges += [Edge(mod, t, ch.lineno, in_function, t.split(".")[0] in PACKAGES)
                      for t in _targets(mod, ch, is_pkg)]
        fn = in_function or isinstance(ch, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        _walk(ch, mod, is_pkg, fn, edges)


def _edges() -> list[Edge]:
    edges: list[Edge] = []
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        _walk(tree, mod, path.name == "__init__.py", False, edges)
    return edges


EDGES = _edges()


def _match(name: str, pattern: str) -> bool:
    return fnmatchcase(name, pattern)


def _allowed(e: Edge) -> bool:
    return any(e.importer == a and e.imported == b for a, b, _ in ALLOWED)


def test_the_graph_is_read():
    # the parser sees the imports it must see (a broken walker would pass every rule)
    pairs = {(e.importer, e.imported) for e in EDGES}
    assert ("nets.engine.spectrum", "nets.engine.hvp") in pairs or \
        any(a == "nets.engine.spectrum" and b.startswith("nets.engine.") for a, b in pairs)
    assert ("quadlab.cli.app", "nets.engine.distributed") in pairs  # the allowed lazy one
    assert any(e.function_level for e in EDGES)
    assert len(MODULES) > 80 and len(EDGES) > 300


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_cycles():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(_cycles(g)) == [["a", "b", "c"], ["e"]]
    assert _cycles({"pkg": {"pkg.sub"}, "pkg.sub": set()}) == []


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for e in EDGES:
        if e.first_party and e.imported in MODULES and e.imported != e.importer:
            graph.setdefault(e.importer, set()).add(e.imported)
    cycles = _cycles(graph)
    assert not cycles, "import cycles (module- and function-level imports):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_forbidden_imports():
    bad = [f"{e}: {r.why}" for e in EDGES for r in FORBIDDEN
           if _match(e.importer, r.importer) and _match(e.imported, r.imported)
           and not (r.module_level_only and e.function_level) and not _allowed(e)]
    assert not bad, "forbidden imports:\n" + "\n".join(bad)


def _layer(name: str) -> int | None:
    for i, patterns in enumerate(LAYERS):
        if any(_match(name, p) or name == p.rstrip(".*") for p in patterns):
            return i
    return None


def test_layers_point_down():
    bad = []
    for e in EDGES:
        a, b = _layer(e.importer), _layer(e.imported)
        if a is not None and b is not None and b > a and not _allowed(e):
            bad.append(f"{e}: layer {LAYERS[a]} may not import layer {LAYERS[b]}")
    assert not bad, "\n".join(bad)


def _is_cli(name: str) -> bool:
    return any(_match(name, p) for p in CLI)


def test_only_command_lines_import_command_lines():
    bad = [str(e) for e in EDGES if e.first_party and _is_cli(e.imported)
           and not _is_cli(e.importer) and not _allowed(e)]
    assert not bad, "a library module imports a command-line module:\n" + "\n".join(bad)


def test_only_command_lines_parse_arguments():
    # argument parsing is the command lines' job: a library module with a parser is a command
    # line hiding in the library (move it to the package's cli)
    bad = [str(e) for e in EDGES if e.imported.split(".")[0] == "argparse"
           and not _is_cli(e.importer)]
    assert not bad, "argparse outside a command-line module:\n" + "\n".join(bad)


def test_no_function_level_first_party_imports():
    bad = [str(e) for e in EDGES if e.first_party and e.function_level and not _allowed(e)]
    assert not bad, ("function-level imports of the project's own modules (move them to the "
                     "top; if that makes a cycle, fix the cycle):\n" + "\n".join(bad))


def test_allowed_exceptions_exist():
    # an exception that no longer matches any import is stale: delete it from ALLOWED
    pairs = {(e.importer, e.imported) for e in EDGES}
    stale = [(a, b) for a, b, _ in ALLOWED if (a, b) not in pairs]
    assert not stale, f"stale entries in ALLOWED: {stale}"


@pytest.mark.parametrize(("imports", "absent"), [
    ("quadlab, proofs, labkit, labkit.atomic, labkit.cache, labkit.jsonio, labkit.progress, "
     "labkit.tables, labkit.records, labkit.interrupts, quadlab.cli, quadlab.studies",
     ("torch", "matplotlib", "nets")),
    ("nets, nets.engine, nets.zoo, nets.studies, nets.cli", ("numba", "quadlab", "figures")),
])
def test_heavy_modules_stay_out_at_run_time(imports, absent):
    code = (f"import sys; import {imports}; "
            f"print(','.join(m for m in {absent!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout.strip()
    assert out == "", f"`import {imports}` loaded {out}"
