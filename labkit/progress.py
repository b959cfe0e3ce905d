"""The one progress display of the project: a :mod:`tqdm` bar on stderr, shown only on a terminal.

Every command line (``quadlab``, ``nets``, ``python -m figures``) draws its progress through
:class:`Progress`; numerical cores never print, they call a ``progress(note)`` callback that the
command line points at :meth:`Progress.advance`.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress"]


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


class Progress:
    """Counts finished items of a known (or unknown) total on a tqdm bar.

    Args:
        total: Number of items, or ``None`` when unknown (a counter is shown instead of a bar).
        desc: Label shown before the bar.
        stream: Where to draw (default ``sys.stderr``).
        enabled: Draw or not; default (``None``): only if ``stream`` is a terminal. Commands pass
            ``False`` for ``--quiet`` and on ranks other than 0.

    Use it as a context manager and call :meth:`advance` after each item (or :meth:`update_to`
    with an absolute count). :attr:`done` counts items whether or not the bar is drawn.
    """

    def __init__(self, total: int | None, desc: str = "", *, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)
                                  or total < 0):
            raise ValueError(f"total must be a non-negative integer or None, got {total!r}")
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _is_terminal(self.stream) if enabled is None else bool(enabled)
        self.total = total
        self.done = 0
        self._bar = tqdm(total=total, desc=desc or None, file=self.stream,
                         disable=not self.enabled, leave=True, dynamic_ncols=True,
                         mininterval=0.2)

    def advance(self, note: str = "", n: int = 1) -> None:
        """Mark ``n`` more items finished and show ``note`` (truncated to 40 characters).

        Args:
            note: What was just finished (e.g. ``"gpt B=8 sgd lr=0.1 s0: 1.23"``).
            n: Number of items finished.
        """
        self.update_to(self.done + n, note)

    def update_to(self, done: int, note: str = "") -> None:
        """Set the count of finished items to ``done`` and show ``note``.

        Args:
            done: Items finished so far (absolute).
            note: Shown after the bar (truncated to 40 characters).
        """
        step = int(done) - self.done
        self.done = int(done)
        if self.enabled:
            if note:
                self._bar.set_postfix_str(note[:40], refresh=False)
            self._bar.update(step)

    def close(self) -> None:
        """End the bar (a newline on the terminal); idempotent."""
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
