"""Figure 8 draws the synthetic cases and the cases built from measured spectra."""

from dataclasses import replace

import numpy as np

from figures import fig8_quadratic


def test_fig8_has_measured_panels_and_honest_ratios(tmp_path):
    res = fig8_quadratic.compute(seeds=1, steps=3000, spectra=("synthetic", "measured"))
    titles = [t for t, _, _ in fig8_quadratic._panels(res)]
    assert len(titles) == 6 and titles[-2:] == ["Transformer-like — measured spectra",
                                                "CNN-like — measured spectra"]
    paths = fig8_quadratic.plot(res, tmp_path)
    assert all(p.exists() and p.stat().st_size > 10_000 for p in paths)
    text = fig8_quadratic.findings(res).measured
    assert "transformer (measured spectra)" in text and "cnn (measured spectra)" in text
    for spectra, study in res.items():
        for case in study.cases:
            v = study.speedup(case)
            name = case if spectra == "synthetic" else f"{case} (measured spectra)"
            if np.isnan(v):
                assert f"{name}: neither GD nor Adam reached the tolerance" in text
            elif np.isfinite(v) and v > 0:
                assert f"{name}: GD/Adam = {v:.3g}×" in text


def test_fig8_verdict_follows_the_speedups():
    res = fig8_quadratic.compute(seeds=1, steps=300, spectra=("synthetic",))
    study = res["synthetic"]

    def with_iterations(table):  # GD and Adam β2=1 iterations per case
        runs = tuple(replace(r, iterations=float(table[r.case][r.optimizer == "GD"]))
                     if r.optimizer in ("GD", "Adam β2=1") else r for r in study.runs)
        return {"synthetic": replace(study, runs=runs)}

    # (Adam, GD): Adam 10× ahead on heterogeneous, level on homogeneous -> agrees
    good = {"hetero": (10, 100), "transformer": (10, 100), "homo": (10, 12), "cnn": (10, 9)}
    assert fig8_quadratic.findings(with_iterations(good)).verdict == "agrees"
    slow = {**good, "homo": (100, 10)}  # Adam slower on a homogeneous case -> partly
    f = fig8_quadratic.findings(with_iterations(slow))
    assert f.verdict == "partly" and "homo Adam is not level with GD but slower" in f.measured
    bad = {**good, "transformer": (10, 10)}
    assert fig8_quadratic.findings(with_iterations(bad)).verdict == "disagrees"
