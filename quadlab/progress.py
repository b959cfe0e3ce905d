"""A minimal progress bar on stderr (no dependency), shown only on a terminal by default."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts finished items of a known total and redraws one status line.

    Args:
        total: number of items.
        desc: label shown before the bar.
        stream: where to draw (default stderr).
        enabled: draw or not; default: only if `stream` is a terminal.

    Use as a context manager and call `advance(note)` after each item.
    """

    def __init__(self, total: int, desc: str = "", *, stream: TextIO | None = None,
                 enabled: bool | None = None):
        self.total = max(int(total), 1)
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
        width = 24
        filled = int(width * self.done / self.total)
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        line = (f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
                f" {elapsed:5.1f}s (eta {eta:4.0f}s) {note[:40]:40s}")
        self.stream.write(line)
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
