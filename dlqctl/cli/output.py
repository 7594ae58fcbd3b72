"""Rendering for the terminal and for scripts. The one CLI module that imports Rich.

Data goes to stdout; everything else (progress, prompts, warnings) to stderr. Rich turns
colour off when the stream is not a terminal and honours NO_COLOR.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from dlqctl.core.models import MatchCount, WriteResult


@functools.cache
def _consoles() -> tuple[Console, Console]:
    # stderr=True makes Rich look up sys.stderr at write time (our scrubbing stream).
    return Console(), Console(stderr=True)


def out() -> Console:
    return _consoles()[0]


def err() -> Console:
    return _consoles()[1]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def print_ndjson(values: Iterable[Any]) -> None:
    write = sys.stdout.write
    for value in values:
        write(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str) + "\n")


def print_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def note(message: str) -> None:
    """A line of narration on stderr (not data)."""
    err().print(message, highlight=False, markup=False)


def key_value_table(
    title: str | None, rows: Iterable[tuple[str, ...]], headers: Sequence[str]
) -> Table:
    table = Table(title=title, show_header=True, header_style="bold", title_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def render_match_counts(counts: Sequence[MatchCount], *, title: str) -> None:
    """The per-consumer × status counts a confirmation prompt shows (on stderr)."""
    table = key_value_table(
        title, ((c.consumer, c.status.value, str(c.count)) for c in counts),
        ("consumer", "status", "entries"),
    )  # fmt: skip
    err().print(table)


def render_write_result(result: WriteResult, output: str) -> None:
    """The summary of a write command: a table, or the SPEC §4 JSON object."""
    if output == "json":
        print_json(result.to_json())
        return
    verb = {"replay": "replayed", "discard": "discarded", "purge": "deleted"}.get(
        result.action, "changed"
    )
    title = f"{result.action}{' (dry run)' if result.dry_run else ''}"
    rows = [
        ("matched", str(result.matched)),
        ("would be " + verb if result.dry_run else verb, str(result.succeeded)),
        ("failed", str(result.failed)),
        ("skipped", str(result.skipped)),
        ("ineligible", str(result.ineligible)),
    ]
    if result.topics:
        rows += [(f"→ {topic}", str(n)) for topic, n in sorted(result.topics.items())]
    out().print(key_value_table(title, rows, ("", "entries")))
    for dlq_id, error in result.failures[:20]:
        err().print(f"failed {dlq_id}: {error}", highlight=False, markup=False)
    if len(result.failures) > 20:
        err().print(f"… and {len(result.failures) - 20} more failures (use -o json for all)")
