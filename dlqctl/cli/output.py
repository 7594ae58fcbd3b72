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

from dlqctl.core.models import CleanupResult, MatchCount, WriteResult, iso_utc


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


class BatchProgress:
    """A progress bar on stderr for batched writes (use only when stderr is a terminal)."""

    def __init__(self, description: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err(), transient=True,
        )  # fmt: skip
        self._description = description
        self._task: Any = None

    def start(self, total: int) -> None:
        self._task = self._progress.add_task(self._description, total=total)
        self._progress.start()

    def advance(self, done: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, done)

    def close(self) -> None:
        self._progress.stop()


def render_cleanup_result(result: CleanupResult, output: str) -> None:
    """discard / purge: the dry-run breakdown and the write summary, or one JSON object."""
    if output == "json":
        print_json(result.to_json())
        return
    preview = result.preview
    if preview is not None and preview.counts:
        verb = "deleted" if result.write.action == "purge" else "discarded"
        rows = ((c.consumer, c.status.value, str(c.count)) for c in preview.counts)
        out().print(
            key_value_table(
                f"entries that would be {verb}", rows, ("consumer", "status", "entries")
            )
        )
        oldest, newest = iso_utc(preview.oldest_failed_at), iso_utc(preview.newest_failed_at)
        out().print(f"failed_at from {oldest} to {newest}", highlight=False)
    if result.cutoff is not None:
        out().print(
            f"older than {result.older_than}: failed_at before {iso_utc(result.cutoff)}",
            highlight=False,
        )
    render_write_result(result.write, output)
    if result.ineligible_ids:
        shown = ", ".join(str(i) for i in result.ineligible_ids[:10])
        more = len(result.ineligible_ids) - 10
        note(f"not pending or not matching the filters (left alone): {shown}"
             + (f" … and {more} more" if more > 0 else ""))  # fmt: skip
    if result.write.skipped:
        note(
            f"{result.write.skipped} entries were skipped: another run (a replay) held them,"
            " or they changed while this ran"
        )
