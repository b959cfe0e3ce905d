import re

import pytest

from figures import proofs_verdicts, report
from figures.__main__ import main
from figures.registry import FigureSpec
from figures.specs import FIGURES
from figures.verdict import OUTCOMES


def test_every_figure_runs_on_the_tiny_profile_and_the_cache_is_reused(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv("NETS_CACHE", str(tmp_path / "nets"))  # training runs, checkpoints
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["--profile", "tiny", "--out", str(out), "--cache", str(cache)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    text = (out / "REPORT.md").read_text()
    assert "Paper's claim" in text
    sections = text.split('<a id="')[1:]
    assert [s.split('"')[0] for s in sections] == list(FIGURES)
    printed = dict(re.findall(r"^== (.+?) \[(.+?)\]", first, flags=re.M))
    for name, section in zip(FIGURES, sections, strict=True):
        # each section states one of the helper's outcomes, the one printed on the console and
        # listed in the overview table, under the figure's own title
        verdicts = re.findall(r"\*\*Verdict:\*\* (.+?)\.\n", section)
        title = FIGURES[name].title
        assert len(verdicts) == 1 and verdicts[0] in OUTCOMES, name
        assert printed[title] == verdicts[0], name
        assert f"| [{title}](#{name}) | {verdicts[0]} |" in text, name
        images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", section)
        if FIGURES[name].draw is not proofs_verdicts.draw:
            assert images, name
        for rel in images:
            png = out / rel
            assert png.exists() and png.stat().st_size > 5_000, png
            assert png.with_suffix(".pdf").exists(), png
    assert "(cached)" not in first
    assert len(list(cache.glob("*.npz"))) == len(FIGURES)
    # second run: everything from the cache, same findings
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert second.count("(cached)") == len(FIGURES)
    assert dict(re.findall(r"^== (.+?) \[(.+?)\]", second, flags=re.M)) == printed
    # the report is fresh for these sources, and stale once they change
    assert main(["--check", "--report", str(out / "REPORT.md")]) == 0
    assert "up to date" in capsys.readouterr().out
    monkeypatch.setattr(report, "fingerprint", lambda: "0" * 16)
    assert main(["--check", "--report", str(out / "REPORT.md")]) == 1
    assert "stale" in capsys.readouterr().out
    assert main(["--check", "--report", str(tmp_path / "none.md")]) == 1


def test_titles_name_the_claim_not_a_seed_file():
    for spec in FIGURES.values():
        assert not re.search(r"Seed 00\d", spec.title), spec.title


@pytest.mark.parametrize("spec", list(FIGURES.values()), ids=list(FIGURES))
def test_specs_have_every_profile(spec: FigureSpec):
    for profile in ("tiny", "quick", "full"):
        assert isinstance(spec.settings_for(profile), dict)
