"""Rendering for the terminal and for scripts. The one CLI module that imports Rich.

Data goes to stdout; everything else (progress, prompts, warnings) to stderr. Rich turns
colour off when the stream is not a terminal and honours NO_COLOR.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dlqctl.cli.machine import print_csv as print_csv
from dlqctl.cli.machine import print_json as print_json
from dlqctl.cli.machine import print_ndjson as print_ndjson
from dlqctl.core.models import (
    AuditRecord,
    CleanupResult,
    DlqEntry,
    DlqStats,
    EntryPage,
    MatchCount,
    StatsDimension,
    Status,
    WriteResult,
    compact_json,
    iso_utc,
)
from dlqctl.core.replay import ReplayReport, TopicCount
from dlqctl.core.runs import RunPlan
from dlqctl.core.timeparse import humanize_age

if TYPE_CHECKING:
    from rich.progress import Progress, Task, TaskID

PlanT = TypeVar("PlanT", bound=RunPlan)


@functools.cache
def _consoles() -> tuple[Console, Console]:
    # stderr=True makes Rich look up sys.stderr at write time (our scrubbing stream).
    # Rich's own NO_COLOR support keeps bold and dim; no colour system means no escape
    # codes at all.
    if os.environ.get("NO_COLOR"):
        return Console(color_system=None), Console(stderr=True, color_system=None)
    return Console(), Console(stderr=True)


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


def render_history(records: Sequence[AuditRecord]) -> None:
    """``history``: one row per recorded run, newest first."""
    if not records:
        note("no recorded actions yet")
        return
    now = datetime.now(UTC)
    rows = (
        (
            when(r.at, now),
            r.actor,
            r.action,
            r.outcome,
            ", ".join(f"{k} {v}" for k, v in r.counts.items() if v) or "nothing matched",
            r.reason or "",
        )
        for r in records
    )
    out().print(
        key_value_table(None, rows, ("at (UTC)", "actor", "action", "outcome", "counts", "reason"))
    )


def render_match_counts(counts: Sequence[MatchCount], *, title: str) -> None:
    """The per-consumer × status counts a confirmation prompt shows (on stderr)."""
    table = key_value_table(
        title,
        ((c.consumer, c.status.value, str(c.count)) for c in counts),
        ("consumer", "status", "entries"),
    )
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
        err().print(f"failed {dlq_id}: {error}", highlight=False, markup=False, soft_wrap=True)
    if len(result.failures) > 20:
        err().print(f"… and {len(result.failures) - 20} more failures (use -o json for all)")


# --- list, show, stats ------------------------------------------------------------------

ERROR_CELL_CHARS = 200
PAYLOAD_CELL_CHARS = 120
STATUS_STYLES = {"pending": "yellow", "replayed": "green", "discarded": "dim"}
BAR_WIDTH = 48
MAX_CHART_ROWS = 400
PIPED_TABLE_WIDTH = 200


def one_line(text: str, limit: int) -> str:
    """The first non-empty line of ``text``, whitespace collapsed, cut at ``limit`` with …."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    collapsed = " ".join(first.split())
    more = collapsed != " ".join(text.split())
    if len(collapsed) > limit:
        return collapsed[: limit - 1].rstrip() + "…"
    return collapsed + (" …" if more else "")


def when(at: datetime | None, now: datetime) -> str:
    """``2026-11-28 10:00:05 (3h ago)``, in UTC."""
    if at is None:
        return ""
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} ({humanize_age(now - at)} ago)"


_FIXED_COLUMNS = ("dlq_id", "consumer", "status", "retries", "failed_at (UTC)")
_GAP = "  "
MAX_CONSUMER_WIDTH = 24
MIN_FLEXIBLE_WIDTH = 20


def _entry_cells(e: DlqEntry, now: datetime, payload: bool) -> list[str]:
    cells = [
        str(e.dlq_id),
        e.consumer,
        e.status.value,
        str(e.retry_count),
        when(e.failed_at, now),
        one_line(e.error_message, ERROR_CELL_CHARS),
    ]
    if payload:
        cells.append(one_line(compact_json(e.event_payload), PAYLOAD_CELL_CHARS))
    return cells


def _fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded or cut (with …) to exactly ``width`` terminal cells."""
    size = cell_len(text)
    if size <= width:
        return " " * (width - size) + text if right else text + " " * (width - size)
    return set_cell_size(text, width - 1) + "…"


def _layout(rows: list[list[str]], width: int, payload: bool) -> list[int]:
    """Column widths: the fixed columns fit their content, the error (and payload) share
    what is left of the line, so each entry stays on one line."""
    widths = [
        max(len(name), *(cell_len(r[i]) for r in rows)) for i, name in enumerate(_FIXED_COLUMNS)
    ]
    widths[1] = min(widths[1], MAX_CONSUMER_WIDTH)
    flexible = 2 if payload else 1
    rest = width - sum(widths) - len(_GAP) * (len(widths) + flexible - 1)
    return widths + [max(MIN_FLEXIBLE_WIDTH, rest // flexible)] * flexible


def _entry_lines(rows: list[list[str]], widths: list[int], header: bool) -> Text:
    text = Text(no_wrap=True, overflow="crop", end="")
    if header:
        names = [*_FIXED_COLUMNS, "error", "payload"][: len(widths)]
        line = _GAP.join(
            _fit(n, w, right=n == "retries") for n, w in zip(names, widths, strict=True)
        )
        text.append(line.rstrip() + "\n", style="bold")
        text.append("─" * cell_len(line) + "\n", style="dim")
    for row in rows:
        text.append(_fit(row[0], widths[0]) + _GAP + _fit(row[1], widths[1]) + _GAP)
        text.append(_fit(row[2], widths[2]), style=STATUS_STYLES.get(row[2], ""))
        rest = [
            _fit(row[3], widths[3], right=True),
            *(_fit(c, w) for c, w in zip(row[4:], widths[4:], strict=True)),
        ]
        text.append(_GAP + _GAP.join(rest).rstrip() + "\n")
    return text


@functools.cache
def _listing_console() -> Console:
    """Off a terminal (and without COLUMNS) Rich assumes 80 columns, which would cut the ids
    of a piped listing; print it on a wide page instead."""
    console = out()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=PIPED_TABLE_WIDTH, color_system=None)


def render_entries(
    entries: Iterable[DlqEntry], *, payload: bool, now: datetime, chunk: int | None = None
) -> int:
    """Print entries as aligned columns on stdout, one line each; with ``chunk``, that many
    at a time (``--all``: the layout of the first chunk is kept). Returns the count."""
    console = _listing_console()
    count = 0
    widths: list[int] | None = None
    batch: list[list[str]] = []

    def flush() -> None:
        nonlocal widths, count
        if not batch:
            return
        header = widths is None
        if widths is None:
            widths = _layout(batch, console.width, payload)
        console.print(_entry_lines(batch, widths, header), soft_wrap=True, highlight=False, end="")
        count += len(batch)
        batch.clear()

    for entry in entries:
        batch.append(_entry_cells(entry, now, payload))
        if chunk is not None and len(batch) >= chunk:
            flush()
    flush()
    return count


def render_entry(entry: DlqEntry, now: datetime) -> None:
    """``show``: every column, the error in full, the payload pretty-printed."""
    from rich.json import JSON
    from rich.panel import Panel

    fields = Table(box=None, show_header=False, pad_edge=False)
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")

    def add(name: str, value: object) -> None:
        shown = "—" if value is None else str(value)
        style = STATUS_STYLES.get(shown, "") if name == "status" else ""
        fields.add_row(Text(name), Text(shown, style=style))

    add("dlq_id", entry.dlq_id)
    add("consumer", entry.consumer)
    add("event_id", entry.event_id)
    add("status", entry.status.value)
    add("retry_count", entry.retry_count)
    add("failed_at", when(entry.failed_at, now))
    add("status_changed_at", when(entry.status_changed_at, now) or None)
    add("status_changed_by", entry.status_changed_by)
    add("status_reason", entry.status_reason)
    add("source_topic", entry.source_topic)
    add("source_partition", entry.source_partition)
    add("source_offset", entry.source_offset)
    data = entry.to_json(full=True)
    add("event_key", data["event_key"])
    add("error_fingerprint", entry.error_fingerprint)
    console = out()
    console.print(fields)
    if entry.event_headers:
        headers = Table(
            title="headers",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            header_style="bold",
        )
        headers.add_column("key", no_wrap=True)
        headers.add_column("value", overflow="fold")
        for key, value in data["event_headers"]:
            headers.add_row(Text(key), Text("null" if value is None else value))
        console.print(headers)
    console.print(Panel(Text(entry.error_message), title="error", title_align="left"))
    payload = JSON.from_data(entry.event_payload, indent=2, ensure_ascii=False)
    payload.text.overflow = "fold"  # long strings fold instead of being cut at the border
    console.print(Panel(payload, title="payload", title_align="left"))
    if entry.event_raw is not None:
        console.print(
            Panel(
                Text(_raw_summary(entry, data["event_raw"])),
                title=f"raw message ({len(entry.event_raw)} bytes)",
                title_align="left",
            )
        )


def _raw_summary(entry: DlqEntry, shown: str) -> str:
    """The raw bytes, unless they are just the payload's JSON."""

    try:
        if json.loads(entry.event_raw or b"") == entry.event_payload:
            return "the payload above, as consumed"
    except ValueError:
        pass
    return shown


def render_stats(stats: DlqStats, *, top: int) -> None:
    """``stats``: consumer × status counts with the oldest pending, and the top errors;
    with ``--by``, the breakdown instead (hour and day as a bar chart)."""
    console = out()
    if stats.by is not None:
        _render_breakdown(stats)
        return
    if not stats.counts:
        note("no matching entries")
        return
    statuses = list(Status)
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", show_footer=True
    )
    # Counts never shrink; on a narrow terminal the consumer and the time wrap instead.
    table.add_column("consumer", footer="all", overflow="fold")
    per_status = {s: sum(c.count for c in stats.counts if c.status is s) for s in statuses}
    for s in statuses:
        table.add_column(s.value, justify="right", no_wrap=True, footer=f"{per_status[s]:,}")
    table.add_column("total", justify="right", no_wrap=True, footer=f"{stats.total:,}")
    table.add_column(
        "oldest pending (UTC)", footer=when(stats.oldest_pending_failed_at, stats.as_of)
    )
    by_consumer: dict[str, dict[Status, int]] = {}
    for c in stats.counts:
        by_consumer.setdefault(c.consumer, {})[c.status] = c.count
    for consumer, counts in sorted(by_consumer.items()):
        table.add_row(
            Text(consumer),
            *(Text(f"{counts.get(s, 0):,}") for s in statuses),
            Text(f"{sum(counts.values()):,}"),
            Text(when(stats.oldest_pending.get(consumer), stats.as_of)),
        )
    console.print(table)
    if stats.error_groups:
        errors = Table(
            title=f"top error groups (of {len(stats.error_groups):,})",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            header_style="bold",
        )
        errors.add_column("entries", justify="right", no_wrap=True)
        errors.add_column("share", justify="right", no_wrap=True)
        errors.add_column("error group", overflow="fold")
        for g in stats.error_groups[:top]:
            errors.add_row(
                Text(f"{g.count:,}"),
                Text(f"{g.count / stats.total:.1%}"),
                Text(one_line(g.fingerprint, 300)),
            )
        console.print(errors)


def _render_breakdown(stats: DlqStats) -> None:
    console = out()
    rows = list(stats.breakdown)
    if not rows:
        note("no matching entries")
        return
    if stats.by in (StatsDimension.HOUR, StatsDimension.DAY):
        if len(rows) > MAX_CHART_ROWS:
            note(
                f"showing the last {MAX_CHART_ROWS} of {len(rows)} buckets"
                " (narrow with --since, or use -o json for all)"
            )
            rows = rows[-MAX_CHART_ROWS:]
        peak = max(b.count for b in rows) or 1
        fmt = "%Y-%m-%d %H:00" if stats.by is StatsDimension.HOUR else "%Y-%m-%d"
        chart = Table(box=None, show_header=True, pad_edge=False, header_style="bold")
        chart.add_column(f"{stats.by.value} (UTC)", no_wrap=True)
        chart.add_column("entries", justify="right", no_wrap=True)
        chart.add_column("", no_wrap=True)
        for b in rows:
            label = f"{b.start.astimezone(UTC):{fmt}}" if b.start else b.key
            chart.add_row(
                Text(label), Text(f"{b.count:,}"), Text(_bar(b.count, peak), style="cyan")
            )
        console.print(chart)
        return
    total = sum(b.count for b in rows) or 1
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column(stats.by.value if stats.by else "", overflow="fold")
    table.add_column("entries", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    for b in rows:
        key = one_line(b.key, 300) if stats.by is StatsDimension.ERROR else b.key
        table.add_row(Text(key), Text(f"{b.count:,}"), Text(f"{b.count / total:.1%}"))
    console.print(table)


def _bar(count: int, peak: int) -> str:
    """A horizontal bar in eighths of a character cell."""
    eighths = round(count / peak * BAR_WIDTH * 8)
    if count and not eighths:
        eighths = 1
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if not rest else " ▏▎▍▌▋▊▉"[rest])


def _progress_bar(description: str, *, with_rate: bool = False) -> Progress:
    """A transient progress bar on stderr: count, (rate,) elapsed, ETA.

    rich.progress is imported here, not at the top: it is the heaviest part of Rich, and
    `list` and `show` never draw a progress bar.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class RateColumn(ProgressColumn):
        """Entries per second."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")

    columns: list[ProgressColumn] = [TextColumn(description), BarColumn(), MofNCompleteColumn()]
    if with_rate:
        columns.append(RateColumn())
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=err(), transient=True)


def render_cleanup_result(result: CleanupResult, output: str) -> None:
    """discard / purge: the dry-run breakdown and the write summary, or one JSON object."""
    if not result.audit_recorded:
        note("warning: the run could not be recorded in the audit log (dlq_actions)")
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
        note(
            f"not pending or not matching the filters (left alone): {shown}"
            + (f" … and {more} more" if more > 0 else "")
        )
    if result.write.skipped:
        note(
            f"{result.write.skipped} entries were skipped: another run (a replay) held them,"
            " or they changed while this ran"
        )


def error_line(message: str) -> None:
    """The one line a failed command ends with (as the error boundary prints them)."""
    print(f"Error: {message}", file=sys.stderr)


def render_routes(routes: Sequence[TopicCount], *, to_stdout: bool = False) -> None:
    """Selected entries per consumer and target topic."""
    table = key_value_table(
        "target topics",
        ((r.consumer, r.topic, str(r.count)) for r in routes),
        ("consumer", "topic", "entries"),
    )
    (out() if to_stdout else err()).print(table)


class RunConsole(Generic[PlanT]):
    """A batch run's listener on the terminal (replay, discard, purge): the confirmation,
    notes, and a progress bar on stderr (count, (rate,) ETA; only when stderr is a terminal
    and ``show``)."""

    def __init__(
        self,
        description: str,
        *,
        confirm: Callable[[PlanT], None],
        show: bool = True,
        with_rate: bool = False,
    ) -> None:
        self._description = description
        self._confirm = confirm
        self._show = show
        self._with_rate = with_rate
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def confirm(self, plan: PlanT) -> None:
        self._confirm(plan)

    def started(self, total: int) -> None:
        if self._show and total and err().is_terminal:
            self._progress = _progress_bar(self._description, with_rate=self._with_rate)
            self._task = self._progress.add_task(self._description, total=total)
            self._progress.start()

    def advanced(self, done: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, highlight=False, markup=False)
        else:
            note(message)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> RunConsole[PlanT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DemoConsole:
    """Renders `dlqctl demo`: narration on stderr, the operator's views on stdout."""

    def step(self, text: str) -> None:
        err().print(Text("\n▶ " + text, style="bold"), soft_wrap=True)

    def stats(self, stats: DlqStats) -> None:
        render_stats(stats, top=5)

    def page(self, page: EntryPage) -> None:
        render_entries(page.entries, payload=False, now=_utc_now())

    def entry(self, entry: DlqEntry) -> None:
        render_entry(entry, _utc_now())

    def replayed(self, report: ReplayReport) -> None:
        render_write_result(report.result, "table")


def _utc_now() -> datetime:
    return datetime.now(UTC)
