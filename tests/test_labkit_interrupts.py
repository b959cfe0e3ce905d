"""Ctrl-C in the command lines: one line, exit status 130, never a traceback (in-process)."""

import io
import os
import signal

import pytest

from labkit.interrupts import EXIT_INTERRUPTED, run_interruptible


def _sigint():
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("after", ["nothing", "runtime error", "value error"])
def test_sigint_becomes_one_line_and_130(after):
    """torch may re-raise the interrupt as ``RuntimeError: KeyboardInterrupt`` or another error."""
    def body():
        try:
            _sigint()
        except KeyboardInterrupt:
            if after == "runtime error":
                raise RuntimeError("KeyboardInterrupt") from None
            if after == "value error":
                raise ValueError("unwinding failed") from None
            raise
        return 0

    err = io.StringIO()
    assert run_interruptible(body, prog="x", saved=lambda: "saved A", stream=err) == 130
    assert err.getvalue() == "\nx: interrupted; saved A\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_errors_without_interrupt_propagate():
    with pytest.raises(RuntimeError, match="real"):
        run_interruptible(lambda: (_ for _ in ()).throw(RuntimeError("real")), prog="x")
    assert run_interruptible(lambda: 3, prog="x") == 3
    assert EXIT_INTERRUPTED == 130


def test_a_failing_note_does_not_become_a_traceback():
    err = io.StringIO()
    assert run_interruptible(_sigint_then_raise, prog="x", saved=lambda: 1 / 0, stream=err) == 130
    assert "could not tell" in err.getvalue()


def _sigint_then_raise():
    _sigint()
    raise AssertionError("not reached")


def test_quadlab_and_figures_commands_exit_130(monkeypatch, capsys, tmp_path):
    import figures.__main__ as fig_main
    import quadlab.cli.app as qapp

    def interrupted(*a, **k):
        _sigint()

    monkeypatch.setitem(qapp.COMMANDS, "run", (interrupted, str))
    assert qapp.main(["run", "hetero"]) == 130
    err = capsys.readouterr().err
    assert "quadlab run: interrupted" in err and "Traceback" not in err
    monkeypatch.setattr(fig_main, "run_figures", interrupted)
    assert fig_main.main(["--profile", "tiny", "--cache", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert f"cached in {tmp_path}" in err and "Traceback" not in err


def test_proofs_command_exits_130(monkeypatch, capsys):
    import proofs.cli as pcli

    def interrupted(*a, **k):
        _sigint()

    monkeypatch.setattr(pcli, "run_all", interrupted)
    assert pcli.main(["--effort", "test"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == ("python -m proofs: interrupted; nothing is saved by this command; "
                           "rerun it to start again"), err
