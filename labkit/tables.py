"""The one table formatter of the project: aligned plain text for the command lines, Markdown for
the report. Columns are ``(key, header, format spec)``; cells go through :func:`format_value`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Column", "format_table", "format_value"]

#: A column: the row key, the header, and a format spec for numbers (``""``: ``str``).
Column = tuple[str, str, str]


def format_value(value: Any, fmt: str = "") -> str:
    """Format one cell.

    Args:
        value: The cell: a number, a string, ``None`` or anything with a ``str``.
        fmt: Format spec applied to numbers (e.g. ``".3f"``); ``""`` keeps ``str(value)``.

    Returns:
        ``"never"`` for ``+inf`` (a step count or time never reached), ``"-"`` for ``None``
        (undefined), other non-finite floats as ``inf``/``-inf``/``nan``, numbers with ``fmt``.
    """
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return "never"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and fmt:
        return format(value, fmt)
    return str(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *,
                 markdown: bool = False) -> str:
    """Render rows as a table.

    Args:
        rows: One mapping per row (every column key must be present).
        columns: ``(key, header, format spec)`` per column.
        markdown: A Markdown table (``| a | b |``) instead of aligned text; in text, columns
            of numbers (``None`` allowed) are right-aligned and the others left-aligned.

    Returns:
        The table, lines joined by ``"\\n"`` (no trailing newline).

    Raises:
        ValueError: a row lacks one of the column keys (the message names it).
    """
    for i, r in enumerate(rows):
        missing = [key for key, _, _ in columns if key not in r]
        if missing:
            raise ValueError(f"row {i} has no column(s) {missing}; it has {sorted(r)}")
    cells = [[format_value(r[key], fmt) for key, _, fmt in columns] for r in rows]
    headers = [h for _, h, _ in columns]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    numeric = [any(_is_number(r[key]) for r in rows)
               and all(_is_number(r[key]) or r[key] is None for r in rows)
               for key, _, _ in columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(c) for c in cells]
    return "\n".join(out)
