"""benchmarks/ladder_runtime.py: measured rows kept, the rest extrapolated by the fitted law."""

import json
import math

import pytest

from nets.zoo.families import ladder, parameter_count


def test_exact_power_law_is_recovered_and_rows_say_measured_or_extrapolated(tmp_path, capsys,
                                                                          benchmark_script):
    recs = []
    for fam, c in (("mlp", 1e-4), ("vgg", 3e-4)):
        for rung in ladder(fam, "ladder")[:2]:
            n = parameter_count(rung)
            recs.append({"family": fam, "name": rung.name, "profile": "ladder",
                         "parameters": n, "spectrum_seconds": c * n ** 1.5,
                         "gap_seconds_this_call": 10 * c * n})
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recs))
    assert benchmark_script("ladder_runtime").main([str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    ex = out["extrapolation"]
    assert ex["spectra_exponent"] == pytest.approx(1.5, rel=1e-9)
    assert ex["gap_exponent"] == pytest.approx(1.0, rel=1e-9)
    rows = {r["name"]: r for r in out["rungs"]}
    top = ladder("vgg", "ladder")[-1]
    n = parameter_count(top)
    assert rows[top.name]["spectrum"] == "extrapolated"
    assert rows[top.name]["spectrum_seconds"] == pytest.approx(3e-4 * n ** 1.5, rel=1e-9)
    assert rows[top.name]["gap"].startswith("not planned")  # above gap_max_params
    small = ladder("mlp", "ladder")[0]
    assert rows[small.name]["spectrum"] == "measured" and rows[small.name]["gap"] == "measured"
    assert math.isfinite(ex["total_hours"]) and ex["total_hours"] > 0
    assert out["wall_clock"] is None and out["note"] is None


def test_wall_clock_and_note_are_recorded_and_checked(tmp_path, capsys, benchmark_script):
    rung = ladder("mlp", "ladder")[0]
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"family": "mlp", "name": rung.name, "profile": "ladder",
                                 "parameters": parameter_count(rung),
                                 "spectrum_seconds": 2.0}]))
    script = benchmark_script("ladder_runtime")
    assert script.main([str(path), "--wall-seconds", "7200", "--shards", "2",
                        "--note", "quiet machine"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["wall_clock"] == {"seconds": 7200.0, "hours": 2.0, "shards": 2}
    assert out["note"] == "quiet machine" and out["cores"] >= 1
    with pytest.raises(SystemExit):
        benchmark_script("ladder_runtime").main([str(path), "--wall-seconds", "-1"])
    assert "--wall-seconds must be > 0" in capsys.readouterr().err
