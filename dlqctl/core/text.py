"""Text shortened to one line, for table cells and log lines."""

from __future__ import annotations


def one_line(text: str, limit: int = 500, *, first_line_only: bool = False) -> str:
    """``text`` on one line with whitespace collapsed, cut at ``limit`` characters with "…".

    A log line keeps every line of the message (joined). With ``first_line_only`` (a table
    cell) only the first non-empty line is kept, and " …" marks that more followed.
    """
    flat = " ".join(text.split())
    shown = flat
    if first_line_only:
        first = next((line for line in text.splitlines() if line.strip()), "")
        shown = " ".join(first.split())
    if len(shown) > limit:
        return shown[: limit - 1].rstrip() + "…"
    return shown + (" …" if shown != flat else "")
