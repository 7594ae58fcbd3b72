"""One-line text: a log line keeps every line of a message, a table cell only the first."""

from __future__ import annotations

from dlqctl.core.text import one_line

TRACEBACK = "Traceback (most recent call last):\n  File 'x.py', line 1\nValueError: bad"


def test_a_log_line_joins_every_line() -> None:
    joined = "Traceback (most recent call last): File 'x.py', line 1 ValueError: bad"
    assert one_line(TRACEBACK) == joined


def test_a_table_cell_keeps_the_first_line_and_marks_the_rest() -> None:
    assert one_line(TRACEBACK, first_line_only=True) == "Traceback (most recent call last): …"


def test_both_cut_at_the_limit_without_a_dangling_space() -> None:
    assert one_line("abc def ghi", 5) == "abc…"
    assert one_line("abc def ghi", 5, first_line_only=True) == "abc…"
