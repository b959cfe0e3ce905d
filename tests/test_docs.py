"""The documentation's promises, checked: every ```python block of README.md and docs/*.md runs,
the README stays a front door, and the API reference covers every package's public API.

A code block runs on its own (fresh namespace, a temporary working directory), so each example
is complete as printed. An HTML comment on the line before a fence changes that:
``<!-- docs-test: slow -->`` runs it only with ``-m slow`` (``make test-all``),
``<!-- docs-test: skip REASON -->`` never runs it (the reason is required: e.g. it needs
torchrun or a user's file).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.M | re.S)
MARK = re.compile(r"<!--\s*docs-test:\s*(?P<kind>slow|skip)\b(?P<reason>[^>]*)-->\s*$")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    code: str
    mark: str | None  # None, "slow" or "skip"
    reason: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(page: Path) -> list[Example]:
    """The ```python blocks of one Markdown page, with the marker on the line before each."""
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        if m["info"].strip().split(" ")[0] not in ("python", "py"):
            continue
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mk = MARK.search(before)
        code = "\n".join(s[len(m["indent"]):] for s in m["body"].splitlines())
        found.append(Example(page, line, code, mk["kind"] if mk else None,
                             mk["reason"].strip() if mk else ""))
    return found


ALL = [ex for page in PAGES for ex in examples(page)]


def _param(ex: Example):
    marks = []
    if ex.mark == "slow":
        marks.append(pytest.mark.slow)
    elif ex.mark == "skip":
        marks.append(pytest.mark.skip(reason=ex.reason))
    return pytest.param(ex, id=ex.id, marks=marks)


def test_pages_have_examples():
    """The extraction itself works: the front door and the package pages carry examples."""
    pages = {ex.page.name for ex in ALL}
    for name in ("README.md", "quadlab.md", "proofs.md", "engine.md", "studies.md"):
        assert name in pages, f"no ```python example found in {name}"


def test_skips_give_a_reason():
    for ex in ALL:
        if ex.mark == "skip":
            assert ex.reason, f"{ex.id}: a skipped example must say why"


@pytest.mark.parametrize("ex", [_param(ex) for ex in ALL])
def test_example_runs(ex: Example, tmp_path, monkeypatch):
    """Run the block as a script in an empty folder (its files land there)."""
    ast.parse(ex.code, filename=ex.id)  # a syntax error names the page and line
    monkeypatch.syspath_prepend(str(ROOT))  # the checkout's packages, whatever the cwd
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [ex.id])
    import matplotlib
    import torch

    matplotlib.use("Agg")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command lines do: small models, shared cores
    try:
        exec(compile(ex.code, ex.id, "exec"), {"__name__": "__main__"})
    finally:
        torch.set_num_threads(threads)


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move reference text to docs/"
    for word in ("make run", "make test", "figures/REPORT.md", "docs/"):
        assert word in text, f"README.md should mention {word!r}"


def test_no_issue_numbers_in_docs():
    for page in PAGES:
        hit = re.search(r"\bissue\s*#?\d+|\(#\d+\)", page.read_text(encoding="utf-8"), re.I)
        assert hit is None, f"{page.name}: issue number {hit[0]!r} (say what, not which ticket)"


def test_relative_links_resolve():
    """Every relative link of the README and the docs points at a file that exists."""
    link = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+)(?:#[^)]*)?\)")
    for page in PAGES:
        for target in link.findall(page.read_text(encoding="utf-8")):
            path = (page.parent / target).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_mentioned_example_files_exist():
    """Every `examples/...py` file a page tells the reader to run is shipped."""
    for page in PAGES:
        for path in re.findall(r"\bexamples/[\w/.-]+\.py", page.read_text(encoding="utf-8")):
            assert (ROOT / path).is_file(), f"{page.name} mentions {path}, which is missing"


def _public_packages() -> list[str]:
    """Every package under the project's roots whose __init__ defines __all__."""
    found = []
    for root in ("quadlab", "nets", "proofs", "labkit", "figures"):
        for init in sorted((ROOT / root).rglob("__init__.py")):
            tree = ast.parse(init.read_text(encoding="utf-8"))
            if any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__"
                                                     for t in n.targets) for n in tree.body):
                found.append(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_api_reference_covers_every_public_package():
    """docs/api/ has a page rendering each package with an __all__ (mkdocstrings `::: pkg`),
    and every name in that __all__ exists (a stale export would break the reference)."""
    rendered = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        rendered |= set(re.findall(r"^:::\s*([\w.]+)\s*$", page.read_text(encoding="utf-8"),
                                   re.M))
    missing = [p for p in _public_packages() if p not in rendered]
    assert not missing, f"add docs/api pages for {missing}"
    for pkg in _public_packages():
        if pkg.endswith(".cli"):
            continue
        mod = importlib.import_module(pkg)
        absent = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert not absent, f"{pkg}.__all__ names missing objects: {absent}"


def test_mkdocs_nav_lists_every_page():
    """mkdocs.yml's nav names every page under docs/ (strict mode only warns on orphans)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    orphans = [p for p in pages if p not in nav]
    assert not orphans, f"pages missing from mkdocs.yml nav: {orphans}"
    assert os.path.exists(ROOT / "docs" / "index.md")


def test_benchmarks_page_names_every_script_and_committed_result():
    """docs/benchmarks.md names every script of benchmarks/ and every committed file of
    benchmarks/results/ (a report nobody can find, or a script nobody knows how to run, is
    undocumented evidence). A report's saved rows, ``X.json`` beside ``X.md``, count as named
    with the report (the page's table writes them ``(`.json`)``)."""
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    bench = ROOT / "benchmarks"
    files = [p for p in bench.iterdir() if p.suffix in (".py", ".sh")]
    files += [p for p in (bench / "results").iterdir() if p.is_file()]
    assert files

    def named(path: Path) -> bool:
        if path.name in page:
            return True
        report = path.with_suffix(".md")
        return path.suffix == ".json" and report.exists() and report.name in page

    missing = sorted(p.name for p in files if not named(p))
    assert not missing, f"docs/benchmarks.md does not name {missing}"
