"""Clean Ctrl-C for the command lines: one line saying what was saved, exit status 130.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread happens to be; inside
torch (autograd, ``vmap``) that exception can come back wrapped as ``RuntimeError:
KeyboardInterrupt`` or as another error raised while unwinding. :func:`run_interruptible`
therefore records that SIGINT arrived and treats *any* exception that escapes after it as the
interruption: it prints one line (the caller's note on what was saved and how to resume) and
returns 130 (128 + SIGINT), never a traceback. A second Ctrl-C while that happens ends the
process at once, also with 130.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TextIO

__all__ = ["EXIT_INTERRUPTED", "run_interruptible"]

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 128 + signal.SIGINT


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
            signal.signal(signal.SIGINT, previous)
