"""A minimal progress bar on stderr (no dependency), shown only on a terminal by default."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts finished items of a known total and redraws one status line.

    Args:
        total: number of items, or None when unknown (a counter is shown instead of a bar).
        desc: label shown before the bar.
        stream: where to draw (default stderr).
        enabled: draw or not; default: only if `stream` is a terminal.

    Use as a context manager and call `advance(note)` after each item.
    """

    def __init__(self, total: int | None, desc: str = "", *, stream: TextIO | None = None,
                 enabled: bool | None = None):
        self.total = None if total is None else max(int(total), 1)
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.start = time.monotonic()

    def advance(self, note: str = "") -> None:
        """Mark one more item finished and redraw."""
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        if self.total is None:  # unknown total: a counter
            line = f"\r{self.desc} {self.done} done {elapsed:5.1f}s {note[:40]:40s}"
        else:
            width = 24
            filled = int(width * min(self.done, self.total) / self.total)
            eta = elapsed / self.done * max(self.total - self.done, 0)
            line = (f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                    f"{self.done}/{self.total} {elapsed:5.1f}s (eta {eta:4.0f}s) {note[:40]:40s}")
        self.stream.write(line)
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
