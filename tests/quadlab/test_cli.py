import json
import subprocess
import sys

import pytest

from quadlab.cli.app import main


def run_json(argv, capsys):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_json_with_given_and_tuned_step(capsys):
    res = run_json(["run", "hetero", "--optimizer", "gd", "--lr", "3e-4", "--steps", "3000"],
                   capsys)
    assert res["lr"] == 3e-4 and res["diverged_at"] == -1
    assert res["gaps"]["0"] > res["gaps"]["1000"] > 0
    tuned = run_json(["run", "hetero", "--steps", "2000"], capsys)
    assert tuned["lr_source"].startswith("tuned") and tuned["iterations_to_tol"] < 2000


def test_run_reports_divergence(capsys):
    res = run_json(["run", "hetero", "--optimizer", "gd", "--lr", "1e-2", "--steps", "100"],
                   capsys)
    assert res["diverged_at"] > 0 and res["iterations_to_tol"] == "inf"  # labkit.jsonio


def test_sweep_and_r_json(capsys):
    sweep = run_json(["sweep", "--cases", "hetero", "--seeds", "1", "--steps", "3000",
                      "--quiet"], capsys)
    assert {r["optimizer"] for r in sweep["rows"]} >= {"GD", "Adam β2=1"}
    r = run_json(["r", "hetero", "homo", "--trials", "2000"], capsys)
    assert [row["case"] for row in r["rows"]] == ["hetero", "homo"]
    assert 0.0 <= r["rows"][0]["p_below"] <= 1.0


def test_tables_are_printed(capsys):
    assert main(["r", "hetero", "--trials", "500"]) == 0
    out = capsys.readouterr().out
    assert "P(r ≤ 1000)" in out and "hetero" in out


def test_bad_input_exits_2_with_message(capsys):
    assert main(["r", "nosuchcase"]) == 2
    assert "unknown case" in capsys.readouterr().err
    assert main(["run", "hetero", "--lr", "-1"]) == 2
    assert "lr must be > 0" in capsys.readouterr().err
    assert main(["run", "hetero", "--optimizer", "gd", "--beta2", "0.9"]) == 2
    with pytest.raises(SystemExit):
        main(["run", "nosuchcase"])


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "quadlab", "r", "hetero", "--trials", "100",
                          "--json"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["rows"][0]["trials"] == 100
