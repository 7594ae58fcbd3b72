"""``stats``: counts by consumer and status, the oldest pending, the top error groups; with
``--by``, a breakdown (hour and day as a bar chart)."""

from __future__ import annotations

from datetime import UTC

from rich import box
from rich.table import Table
from rich.text import Text

from dlqctl.cli.output.console import note, out, when
from dlqctl.core.models import DlqStats, StatsDimension, Status
from dlqctl.core.text import one_line

BAR_WIDTH = 48
MAX_CHART_ROWS = 400
ERROR_GROUP_CHARS = 300


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
    refailed = sum(r.entries for r in stats.refailures.values())
    if refailed:
        # Entries that failed again after a replay (only when there are any).
        table.add_column("failed again", justify="right", no_wrap=True, footer=f"{refailed:,}")
    table.add_column(
        "oldest pending (UTC)", footer=when(stats.oldest_pending_failed_at, stats.as_of)
    )
    by_consumer: dict[str, dict[Status, int]] = {}
    for c in stats.counts:
        by_consumer.setdefault(c.consumer, {})[c.status] = c.count
    for consumer, counts in sorted(by_consumer.items()):
        later = stats.refailures.get(consumer)
        again = [Text(f"{later.entries:,}" if later else "0")] if refailed else []
        table.add_row(
            Text(consumer),
            *(Text(f"{counts.get(s, 0):,}") for s in statuses),
            Text(f"{sum(counts.values()):,}"),
            *again,
            Text(when(stats.oldest_pending.get(consumer), stats.as_of)),
        )
    console.print(table)
    if refailed:
        attempts = sum(r.attempts for r in stats.refailures.values())
        note(
            f"{refailed:,} {'entry' if refailed == 1 else 'entries'} failed again after a"
            f" replay ({attempts:,} later {'failure' if attempts == 1 else 'failures'});"
            " dlqctl list --failed-again lists them"
        )
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
                Text(one_line(g.fingerprint, ERROR_GROUP_CHARS, first_line_only=True)),
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
        key = b.key
        if stats.by is StatsDimension.ERROR:
            key = one_line(b.key, ERROR_GROUP_CHARS, first_line_only=True)
        table.add_row(Text(key), Text(f"{b.count:,}"), Text(f"{b.count / total:.1%}"))
    console.print(table)


def _bar(count: int, peak: int) -> str:
    """A horizontal bar in eighths of a character cell."""
    eighths = round(count / peak * BAR_WIDTH * 8)
    if count and not eighths:
        eighths = 1
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if not rest else " ▏▎▍▌▋▊▉"[rest])
