"""The two consoles (data on stdout, the rest on stderr), notes, and plain-text tables.

Rich turns colour off when the stream is not a terminal and honours NO_COLOR.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dlqctl.core.timeparse import humanize_age


class _Console(Console):
    """A Console that leaves a closed pipe to the CLI's boundary (exit 141, quietly) instead
    of exiting 1 itself. Every console of the CLI is one (``new_console``)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def new_console(**options: Any) -> Console:
    """A Rich console with the CLI's handling of a closed pipe."""
    return _Console(**options)


@functools.cache
def _consoles() -> tuple[Console, Console]:
    # stderr=True makes Rich look up sys.stderr at write time (our scrubbing stream).
    # Rich's own NO_COLOR support keeps bold and dim; no colour system means no escape
    # codes at all.
    if os.environ.get("NO_COLOR"):
        return _Console(color_system=None), _Console(stderr=True, color_system=None)
    return _Console(), _Console(stderr=True)


def out() -> Console:
    return _consoles()[0]


def err() -> Console:
    return _consoles()[1]


def note(message: str) -> None:
    """A line of narration on stderr (not data)."""
    err().print(message, highlight=False, markup=False, soft_wrap=True)


def key_value_table(
    title: str | None, rows: Iterable[tuple[str, ...]], headers: Sequence[str]
) -> Table:
    """A table of plain text: cells are never parsed as Rich markup (a consumer may be
    called ``[x]``)."""
    table = Table(
        title=Text(title) if title else None,
        show_header=True,
        header_style="bold",
        title_justify="left",
    )
    for header in headers:
        table.add_column(Text(header), overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def when(at: datetime | None, now: datetime) -> str:
    """``2026-11-28 10:00:05 (3h ago)``, in UTC."""
    if at is None:
        return ""
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} ({humanize_age(now - at)} ago)"


def utc_now() -> datetime:
    return datetime.now(UTC)
