"""`nets` command-line errors: one `error: …` line, exit status 2, nothing computed."""

import pytest
import torch

import nets.cli.app as cli

BASE = ["--model", "mlp", "--steps", "2", "--probes", "1", "--quiet"]


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if a model is loaded: every error must come before any computation."""
    def boom(*a, **k):
        raise AssertionError("computation started before the arguments were checked")

    monkeypatch.setattr(cli, "resolve_model", boom)


def _cases(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cases = {
        "bogus device": (["spectrum", *BASE, "--device", "bogus"], "--device 'bogus'"),
        "unsupported device type": (["spectrum", *BASE, "--device", "meta"], "only cpu and cuda"),
        "bad regex": (["js0", *BASE, "--exclude", "("], "--exclude '(' is not a regular"),
        "out is a directory": (["spectrum", *BASE, "--out", str(tmp_path)], "is a directory"),
        "out below a file": (["spectrum", *BASE, "--out", str(blocker / "r.json")],
                             "not a directory"),
        "zero steps": (["spectrum", "--model", "mlp", "--steps", "0"], "--steps must be >= 1"),
        "zero threads": (["spectrum", *BASE, "--threads", "0"], "--threads must be >= 1"),
        "zero bootstrap": (["js0", *BASE, "--bootstrap", "0"], "--bootstrap must be >= 1"),
        "negative width": (["js0", *BASE, "--width", "-1"], "--width must be a positive"),
        "zero chunk size": (["spectrum", *BASE, "--chunk-size", "0"], "--chunk-size must be"),
    }
    if not torch.cuda.is_available():
        cases["cuda on a CPU-only torch"] = (["spectrum", *BASE, "--device", "cuda"],
                                             "no usable CUDA")
    else:
        cases["missing GPU index"] = (["spectrum", *BASE, "--device", "cuda:999"],
                                      "device(s) visible")
    return cases


def test_each_user_error_is_one_line_and_exit_2(tmp_path, capsys, no_compute):
    for what, (argv, msg) in _cases(tmp_path).items():
        assert cli.main(argv) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("nets: error: ") and msg in err, (what, err)
        assert "Traceback" not in err and err.count("\n") == 1, (what, err)
