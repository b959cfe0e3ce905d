"""Every user error of the quadlab and proofs command lines: one line `…: error: …` on stderr,
exit status 2, no traceback (issue 15, item 5)."""

from __future__ import annotations

import re

import pytest

from proofs.cli import main as proofs_main
from quadlab.cli.app import main as quadlab_main


@pytest.mark.parametrize(("argv", "match"), [
    (["run", "hetero", "--steps", "1000000000", "--lr", "1e-3"], "needs about .* GiB"),
    (["run", "hetero", "--steps", "1000000000"], "needs about .* GiB"),
    (["run", "hetero", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["run", "hetero", "--tol", "-1", "--lr", "1e-3"], "--tol must be finite and > 0"),
    (["run", "hetero", "--lr", "nan"], "--lr must be > 0"),
    (["run", "hetero", "--lr", "1e-3", "--steps", "-5"], "steps must be a non-negative"),
    (["sweep", "--seeds", "0", "--quiet"], "--seeds must be >= 1"),
    (["sweep", "--seeds", "-2", "--quiet"], "--seeds must be >= 1"),
    (["r", "hetero", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["r", "hetero", "--trials", "0"], "--trials must be >= 1"),
])
def test_quadlab_user_errors(argv, match, capsys):
    assert quadlab_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"quadlab {argv[0]}: error: ") and "Traceback" not in err
    assert err.count("\n") == 1
    assert re.search(match, err), err


def test_proofs_negative_seed(capsys):
    assert proofs_main(["--seed", "-1", "--only", "prop1"]) == 2
    err = capsys.readouterr().err
    assert err == "python -m proofs: error: --seed must be >= 0, got -1\n"
