"""Ctrl-C in the command lines: one line, exit status 130, never a traceback (in-process)."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

from labkit.interrupts import EXIT_INTERRUPTED, REDELIVER_SECONDS, run_interruptible

ROOT = Path(__file__).resolve().parent.parent


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


class _SwallowsInterrupt:
    """Ctrl-C arrives while ``__del__`` runs: Python ignores the exception and goes on, as it
    does for a ``ctypes`` callback (llvmlite's object-cache hook during numba compilation)."""

    events: ClassVar[list[str]] = []

    def __del__(self):
        self.events.append("entered")
        _sigint()
        for _ in range(10_000):  # the handler runs here, inside __del__
            pass
        self.events.append("not interrupted")


def test_an_interrupt_a_callback_swallowed_is_delivered_again(capfd):
    _SwallowsInterrupt.events = []
    steps = []

    def body():
        _SwallowsInterrupt()  # collected at once: the first KeyboardInterrupt is swallowed
        for i in range(400):  # 4 s of work the re-delivered interruption stops
            steps.append(i)
            time.sleep(0.01)
        return 0

    err, hook = io.StringIO(), sys.unraisablehook
    start = time.perf_counter()
    assert run_interruptible(body, prog="x", saved="saved B", stream=err) == 130
    assert time.perf_counter() - start < 3.0  # stopped after about REDELIVER_SECONDS
    assert _SwallowsInterrupt.events == ["entered"]  # __del__ was interrupted...
    assert 0 < len(steps) < 400  # ...and the body went on until the re-delivery
    assert err.getvalue() == "\nx: interrupted; saved B\n"
    captured = capfd.readouterr()
    assert "Exception ignored" not in captured.err and "Traceback" not in captured.err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.unraisablehook is hook  # put back
    time.sleep(2 * REDELIVER_SECONDS)  # no late re-delivery escapes after the return


def test_a_body_that_swallowed_the_interrupt_and_returned_counts_as_interrupted():
    _SwallowsInterrupt.events = []
    err = io.StringIO()
    assert run_interruptible(lambda: (_SwallowsInterrupt(), 0)[1], prog="x",
                             saved="saved C", stream=err) == 130
    assert err.getvalue() == "\nx: interrupted; saved C\n"
    assert _SwallowsInterrupt.events == ["entered"]


def test_clean_up_code_is_not_interrupted_again():
    cleaned = []

    def body():
        try:
            _sigint()
        finally:  # longer than the re-delivery period: must run to its end
            time.sleep(3 * REDELIVER_SECONDS)
            cleaned.append(True)

    err = io.StringIO()
    assert run_interruptible(body, prog="x", stream=err) == 130
    assert cleaned == [True]
    assert err.getvalue().count("interrupted") == 1


def test_an_interrupt_inside_exec_of_a_string_still_exits_130(tmp_path):
    """``namedtuple``/``dataclass`` creation runs ``exec`` of a string; CPython remembers a
    KeyboardInterrupt that escaped one and, unless that is cleared, ends a ``python -m`` run by
    SIGINT (status -2) although the interruption was caught."""
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import os, signal\n"
        "from labkit.interrupts import run_interruptible\n"
        "def body():\n"
        "    exec('os.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(10**6): pass',\n"
        "         {'os': os, 'signal': signal})\n"
        "    return 0\n"
        "raise SystemExit(run_interruptible(body, prog='x', saved='saved D'))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, (proc.returncode, proc.stderr)
    assert proc.stderr == "\nx: interrupted; saved D\n"
