"""Plain-text tables for the command lines (numbers formatted, columns aligned)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def format_value(value, fmt: str = "") -> str:
    """Format one cell: +inf as "never", other non-finite floats as-is, numbers with `fmt`."""
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return "never"
    if isinstance(value, int | float) and not isinstance(value, bool) and fmt:
        return format(value, fmt)
    return str(value)


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """Render rows as an aligned text table.

    Args:
        rows: one dict per row.
        columns: (key, header, format spec) per column; numbers are right-aligned.
    """
    cells = [[format_value(r[key], fmt) for key, _, fmt in columns] for r in rows]
    headers = [h for _, h, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[key], int | float) for r in rows) for key, _, _ in columns]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(c) for c in cells]
    return "\n".join(out)
