"""labkit.progress (tqdm, terminal only) and labkit.tables (text and Markdown)."""

import io
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.progress import Progress
from labkit.tables import format_table, format_value


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal():
    out = _Terminal()
    with Progress(3, "work", stream=out) as bar:
        for i in range(3):
            bar.advance(f"item {i}")
    text = out.getvalue()
    assert bar.enabled and bar.done == 3
    assert "work" in text and "3/3" in text and "item 2" in text


@pytest.mark.parametrize("enabled", [None, False])
def test_progress_is_silent_off_a_terminal_or_when_asked(enabled):
    out = io.StringIO() if enabled is None else _Terminal()
    with Progress(4, "quiet", stream=out, enabled=enabled) as bar:
        bar.advance()
        bar.update_to(3, "jump")
    assert out.getvalue() == "" and not bar.enabled and bar.done == 3  # still counts


def test_progress_unknown_total_and_bad_total():
    out = _Terminal()
    with Progress(None, "count", stream=out) as bar:
        bar.advance(n=5)
    assert "5" in out.getvalue() and bar.done == 5
    with pytest.raises(ValueError, match="total"):
        Progress(-1)


def test_format_value_rules():
    assert format_value(math.inf, ".3f") == "never"
    assert format_value(-math.inf, ".3f") == "-inf"
    assert format_value(math.nan, ".3f") == "nan"
    assert format_value(None, ".3f") == "-"
    assert format_value(1.23456, ".3f") == "1.235"
    assert format_value(True, "d") == "True"
    assert format_value("x", ".3f") == "x"


COLS = [("name", "name", ""), ("v", "value", ".2f")]


def test_text_table_aligns_numbers_right():
    lines = format_table([{"name": "a", "v": 1.0}, {"name": "long", "v": None},
                          {"name": "c", "v": 123.456}], COLS).splitlines()
    assert lines[0].split() == ["name", "value"] and set(lines[1]) <= {"-", " "}
    assert lines[2] == "a       1.00" and lines[3] == "long       -"
    assert lines[4] == "c     123.46"


def test_markdown_table():
    md = format_table([{"name": "a", "v": math.inf}], COLS, markdown=True)
    assert md.splitlines() == ["| name | value |", "|---|---|", "| a | never |"]


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="'v'"):
        format_table([{"name": "a"}], COLS)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1,
                max_size=8))
def test_text_table_lines_have_equal_width(values):
    rows = [{"name": f"r{i}", "v": v} for i, v in enumerate(values)]
    lines = format_table(rows, COLS).splitlines()
    assert len(lines) == len(values) + 2
    assert len({len(line) for line in lines[1:]}) == 1  # right-aligned numbers: equal widths
