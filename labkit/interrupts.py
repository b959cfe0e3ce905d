"""Clean Ctrl-C for the command lines: one line saying what was saved, exit status 130.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread happens to be; inside
torch (autograd, ``vmap``) that exception can come back wrapped as ``RuntimeError:
KeyboardInterrupt`` or as another error raised while unwinding. :func:`run_interruptible`
therefore records that SIGINT arrived and treats *any* exception that escapes after it as the
interruption: it prints one line (the caller's note on what was saved and how to resume) and
returns 130 (128 + SIGINT), never a traceback. A second Ctrl-C while that happens ends the
process at once, also with 130.

The ``KeyboardInterrupt`` can land in code that swallows it: a ``ctypes`` callback (llvmlite's
object-cache hook while numba compiles), a ``__del__`` or a weakref callback prints "Exception
ignored" and the command goes on, to its end or for hours. After the first SIGINT a watchdog
thread therefore re-delivers the interruption every :data:`REDELIVER_SECONDS` until ``main()``
has ended, never while the main thread is unwinding an exception (clean-up code runs
undisturbed); a re-delivery that arrives after ``main()`` has ended is ignored, and the swallowed
exception is not reported as "Exception ignored". CPython also remembers a ``KeyboardInterrupt``
that escaped an ``exec`` of a string (``namedtuple`` and ``dataclass`` creation) and would end
the process by SIGINT (status -2) even though it was caught; that record is cleared.

Before :func:`run_interruptible` runs, a command line is still importing torch or numba, which
takes seconds; a ``KeyboardInterrupt`` raised there would print an import traceback. Each
package whose command line imports heavy modules therefore calls :func:`guard_startup` at the top
of its ``__init__``, before those imports: when the process runs that package as a command line
it installs a handler that prints one line and ends the process with 130 at once (nothing has
been saved yet). :func:`run_interruptible` replaces it while the command runs and puts it back
after, so Ctrl-C at any moment of the process gives one line and 130.
"""

from __future__ import annotations

import _thread
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import TextIO

__all__ = ["EXIT_INTERRUPTED", "REDELIVER_SECONDS", "guard_startup", "run_interruptible"]

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 128 + signal.SIGINT

#: Seconds between the watchdog's re-deliveries of an interruption that a callback swallowed.
REDELIVER_SECONDS = 0.5

#: Tokens of the watchdog's simulated SIGINTs not yet handled (at most one; a ``SimpleQueue``
#: is safe to use from a signal handler).
_redeliveries: queue.SimpleQueue[None] = queue.SimpleQueue()

#: What the start-up handler says: set by :func:`guard_startup`, updated by
#: :func:`run_interruptible` once the command has run.
_startup: dict[str, str] = {}


def _on_startup_sigint(signum: int, frame: object) -> None:
    """SIGINT outside :func:`run_interruptible`: one line, exit 130, no unwinding (an exception
    raised inside ``import torch`` would print a traceback, or worse, half-import a module)."""
    if _take_redelivery():  # a late re-delivery of an interruption already reported
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a reentrant flush of an interrupted write: the line still goes out
            pass
    line = f"\n{_startup.get('prog', 'python')}: interrupted {_startup.get('note', '')}\n"
    os.write(2, line.encode(errors="replace"))
    os._exit(EXIT_INTERRUPTED)


def _module_run_by_m() -> str | None:
    """The module of ``python -m MODULE`` (from ``sys.orig_argv``), or ``None``."""
    argv = list(getattr(sys, "orig_argv", []))
    i = 1
    while i < len(argv):
        tok = argv[i]
        if tok == "-m":
            return argv[i + 1] if i + 1 < len(argv) else None
        if tok.startswith("-m") and not tok.startswith("--"):
            return tok[2:]  # the attached form, `python -mnets`
        if tok in ("-c", "--") or not tok.startswith("-"):
            return None  # a script or `-c`: no module
        i += 2 if tok in ("-X", "-W", "--check-hash-based-pycs") else 1  # options with a value
    return None


def _runs_as_command(package: str) -> bool:
    """Whether this process is ``package``'s command line: ``python -m package[.module]`` or the
    console script named ``package`` (not another tool's ``python -m`` that imports it)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 == "-m":  # Python is importing the -m module's packages now
        mod = _module_run_by_m()
        return mod is not None and mod.split(".")[0] == package
    return os.path.basename(argv0) == package


def guard_startup(package: str, *, prog: str | None = None) -> bool:
    """Make Ctrl-C during a command line's start-up print one line and exit 130.

    Call at the top of a package ``__init__``, before its heavy imports. The handler is
    installed only when this process runs ``package`` as a command line, so importing the
    package as a library changes nothing: ``python -m package[.module]`` (while Python imports
    the package for ``-m``, ``sys.argv[0]`` is ``"-m"``; the module is read from
    ``sys.orig_argv``, so another tool's ``python -m tool`` that imports the package is left
    alone) or its console script, whose name is ``package``. It is also left alone off the main
    thread and when SIGINT already has a handler other than Python's default, and the first
    package to install it names the line (the command's package, which imports the others).

    Args:
        package: The package's import name, e.g. ``"nets"``.
        prog: Program name that starts the line (default ``package``).

    Returns:
        Whether the handler was installed.
    """
    if not isinstance(package, str) or not package:
        raise TypeError(f"package must be a non-empty import name, got {package!r}")
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGINT)
    if current is _on_startup_sigint:  # the command's own package came first (it imports this)
        return True
    if not _runs_as_command(package):
        return False
    if current is not signal.default_int_handler:
        return False
    _startup.update(prog=prog or package, note="while starting; nothing was saved")
    signal.signal(signal.SIGINT, _on_startup_sigint)
    return True


def _take_redelivery() -> bool:
    """Consume the watchdog's token for a simulated SIGINT, if one is outstanding."""
    try:
        _redeliveries.get_nowait()
    except queue.Empty:
        return False
    return True


def _inside(frame: FrameType | None, code: CodeType) -> bool:
    """Whether ``frame`` or one of its callers runs ``code``."""
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def _handling_exception(thread_id: int) -> bool:
    """Whether the thread is inside an ``except``/``finally``/``__exit__`` of an exception (is
    unwinding), from :func:`sys._current_exceptions` (exc_info tuples before Python 3.12)."""
    current = sys._current_exceptions().get(thread_id)
    if isinstance(current, tuple):
        current = current[1]
    return current is not None


def _redeliver_until(finished: threading.Event, thread_id: int) -> None:
    """The watchdog: re-send the interruption until the command has stopped.

    A ``KeyboardInterrupt`` raised while the main thread runs a callback whose exceptions are
    ignored (a ``ctypes`` callback such as llvmlite's object-cache hook during numba's
    compilation, a ``__del__``, a weakref callback) is printed as "Exception ignored" and the
    command goes on. Until ``finished`` is set, the interruption is therefore simulated again
    every :data:`REDELIVER_SECONDS` (at most one outstanding at a time), but never while the
    main thread is unwinding an exception (its clean-up code runs undisturbed).
    """
    while not finished.wait(REDELIVER_SECONDS):
        if _redeliveries.empty() and not _handling_exception(thread_id):
            _redeliveries.put(None)
            _thread.interrupt_main(signal.SIGINT)


def _forget_caught_interrupt() -> None:
    """Clear CPython's record of a ``KeyboardInterrupt`` that escaped an ``exec``/``eval`` of a
    string (``collections.namedtuple``, ``dataclasses`` and numba build classes that way while
    modules import). CPython keeps that record even when the exception is caught later, and at
    exit it then ends the process by SIGINT (status -2) instead of with its exit status. Every
    ``exec`` of a string resets the record, and this one succeeds."""
    exec("", {})  # a constant empty string


def run_interruptible(main: Callable[[], int], *, prog: str,
                      saved: Callable[[], str] | str = "nothing was saved",
                      stream: TextIO | None = None) -> int:
    """Run ``main()`` and turn Ctrl-C at any moment into one line and exit status 130.

    The first SIGINT raises ``KeyboardInterrupt`` in the main thread. Where a callback swallows
    it, a watchdog thread simulates SIGINT again every :data:`REDELIVER_SECONDS` (never while
    an exception unwinds) until ``main()`` has ended; a re-delivered interruption that finds
    ``main()`` already left is ignored, so the line is printed once. A ``main()`` that returns
    after SIGINT (it swallowed every interruption) still counts as interrupted. A second real
    Ctrl-C ends the process at once with 130.

    Args:
        main: The command's body; returns its exit status.
        prog: Program name that starts the line, e.g. ``"nets spectrum"``.
        saved: What is saved and how to resume (called at interruption time when callable),
            e.g. ``"probes 0-3 are in runs/x.json; rerun the same command to resume"``.
        stream: Where the line goes (default stderr).

    Returns:
        ``main()``'s status, or :data:`EXIT_INTERRUPTED`.
    """
    interrupted = threading.Event()  # a real SIGINT arrived
    finished = threading.Event()  # main() has returned or raised
    wake = threading.Event()  # either of the two: the watchdog starts or ends

    def body() -> int:
        return main()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if _take_redelivery():  # the watchdog's: raise again only while main() still runs
            if not finished.is_set() and _inside(frame, body.__code__):
                raise KeyboardInterrupt
            return
        if interrupted.is_set():  # a second Ctrl-C: stop now
            os._exit(EXIT_INTERRUPTED)
        interrupted.set()
        wake.set()
        raise KeyboardInterrupt

    def watch(thread_id: int) -> None:
        wake.wait()
        _redeliver_until(finished, thread_id)

    main_thread = threading.current_thread() is threading.main_thread()
    if not main_thread:  # signals reach the main thread only: nothing to catch here
        return main()
    watchdog = threading.Thread(target=watch, args=(threading.get_ident(),),
                                name="labkit-interrupt-watchdog", daemon=True)
    def quiet_unraisable(unraisable: object) -> None:
        if interrupted.is_set() and isinstance(getattr(unraisable, "exc_value", None),
                                               KeyboardInterrupt):
            return  # the interruption, swallowed by a callback: re-delivered, not reported
        previous_hook(unraisable)

    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_hook, sys.unraisablehook = sys.unraisablehook, quiet_unraisable
    watchdog.start()
    try:
        try:
            status = body()
        except BaseException as e:
            if not (interrupted.is_set() or isinstance(e, KeyboardInterrupt)):
                raise
        else:
            if not interrupted.is_set():
                return status
        finally:
            finished.set()
            wake.set()
            watchdog.join()
        _forget_caught_interrupt()
        try:
            note = saved() if callable(saved) else saved
        except Exception as exc:  # the note must never turn the interruption into a traceback
            note = f"(could not tell what was saved: {exc})"
        out = sys.stderr if stream is None else stream
        print(f"\n{prog}: interrupted; {note}", file=out, flush=True)
        return EXIT_INTERRUPTED
    finally:
        if previous is _on_startup_sigint:
            _startup["note"] = "while exiting, after the command ended"
        signal.signal(signal.SIGINT, previous)
        if sys.unraisablehook is quiet_unraisable:
            sys.unraisablehook = previous_hook
