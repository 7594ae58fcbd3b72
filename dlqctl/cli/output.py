"""Rendering for the terminal and for scripts. The one CLI module that imports Rich.

Data goes to stdout; everything else (progress, prompts, warnings) to stderr. Rich turns
colour off when the stream is not a terminal and honours NO_COLOR.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from dlqctl.core.models import MatchCount, WriteResult
from dlqctl.core.replay import ReplayPlan, TopicCount


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


def error_line(message: str) -> None:
    """The one line a failed command ends with (as the error boundary prints them)."""
    print(f"Error: {message}", file=sys.stderr)


def render_routes(routes: Sequence[TopicCount], *, to_stdout: bool = False) -> None:
    """Selected entries per consumer and target topic."""
    table = key_value_table(
        "target topics", ((r.consumer, r.topic, str(r.count)) for r in routes),
        ("consumer", "topic", "entries"),
    )  # fmt: skip
    (out() if to_stdout else err()).print(table)


class _RateColumn(ProgressColumn):
    """Entries per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")


class ReplayConsole:
    """Replay's listener on the terminal: notes, the confirmation, a progress bar on stderr
    (count, rate, ETA; only when stderr is a terminal)."""

    def __init__(self, confirm: Callable[[ReplayPlan], None]) -> None:
        self._confirm = confirm
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def confirm(self, plan: ReplayPlan) -> None:
        self._confirm(plan)

    def started(self, total: int) -> None:
        if total and err().is_terminal:
            self._progress = Progress(
                TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                TimeRemainingColumn(), console=err(), transient=True,
            )  # fmt: skip
            self._task = self._progress.add_task("replay", total=total)
            self._progress.start()

    def advanced(self, attempted: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=attempted)

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, highlight=False, markup=False)
        else:
            note(message)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ReplayConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
