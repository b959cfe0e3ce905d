import re

import pytest

from figures import proofs_verdicts
from figures.__main__ import main
from figures.registry import FigureSpec
from figures.specs import FIGURES


def test_every_figure_runs_on_the_tiny_profile_and_the_cache_is_reused(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv("NETS_CACHE", str(tmp_path / "nets"))  # training runs, checkpoints
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["--profile", "tiny", "--out", str(out), "--cache", str(cache)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    report = (out / "REPORT.md").read_text()
    assert "Paper's claim" in report and "Verdict" in report
    sections = report.split('<a id="')[1:]
    assert [s.split('"')[0] for s in sections] == list(FIGURES)
    for name, section in zip(FIGURES, sections, strict=True):
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


@pytest.mark.parametrize("spec", list(FIGURES.values()), ids=list(FIGURES))
def test_specs_have_every_profile(spec: FigureSpec):
    for profile in ("tiny", "quick", "full"):
        assert isinstance(spec.settings_for(profile), dict)
