"""Clean Ctrl-C for the command lines: one line saying what was saved, exit status 130.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread happens to be; inside
torch (autograd, ``vmap``) that exception can come back wrapped as ``RuntimeError:
KeyboardInterrupt`` or as another error raised while unwinding. :func:`run_interruptible`
therefore records that SIGINT arrived and treats *any* exception that escapes after it as the
interruption: it prints one line (the caller's note on what was saved and how to resume) and
returns 130 (128 + SIGINT), never a traceback. A second Ctrl-C while that happens ends the
process at once, also with 130.

Before :func:`run_interruptible` runs, a command line is still importing torch or numba, which
takes seconds; a ``KeyboardInterrupt`` raised there would print an import traceback. Each
package whose command line imports heavy modules therefore calls :func:`guard_startup` at the top
of its ``__init__``, before those imports: when the process runs that package as a command line
it installs a handler that prints one line and ends the process with 130 at once (nothing has
been saved yet). :func:`run_interruptible` replaces it while the command runs and puts it back
after, so Ctrl-C at any moment of the process gives one line and 130.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TextIO

__all__ = ["EXIT_INTERRUPTED", "guard_startup", "run_interruptible"]

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 128 + signal.SIGINT

#: What the start-up handler says: set by :func:`guard_startup`, updated by
#: :func:`run_interruptible` once the command has run.
_startup: dict[str, str] = {}


def _on_startup_sigint(signum: int, frame: object) -> None:
    """SIGINT outside :func:`run_interruptible`: one line, exit 130, no unwinding (an exception
    raised inside ``import torch`` would print a traceback, or worse, half-import a module)."""
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


def run_interruptible(main: Callable[[], int], *, prog: str,
                      saved: Callable[[], str] | str = "nothing was saved",
                      stream: TextIO | None = None) -> int:
    """Run ``main()`` and turn Ctrl-C at any moment into one line and exit status 130.

    Args:
        main: The command's body; returns its exit status.
        prog: Program name that starts the line, e.g. ``"nets spectrum"``.
        saved: What is saved and how to resume (called at interruption time when callable),
            e.g. ``"probes 0-3 are in runs/x.json; rerun the same command to resume"``.
        stream: Where the line goes (default stderr).

    Returns:
        ``main()``'s status, or :data:`EXIT_INTERRUPTED`.
    """
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if interrupted.is_set():  # a second Ctrl-C: stop now
            os._exit(EXIT_INTERRUPTED)
        interrupted.set()
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        return main()
    except BaseException as e:
        if not (interrupted.is_set() or isinstance(e, KeyboardInterrupt)):
            raise
        try:
            note = saved() if callable(saved) else saved
        except Exception as exc:  # the note must never turn the interruption into a traceback
            note = f"(could not tell what was saved: {exc})"
        out = sys.stderr if stream is None else stream
        print(f"\n{prog}: interrupted; {note}", file=out, flush=True)
        return EXIT_INTERRUPTED
    finally:
        if main_thread:
            if previous is _on_startup_sigint:
                _startup["note"] = "while exiting, after the command ended"
            signal.signal(signal.SIGINT, previous)
