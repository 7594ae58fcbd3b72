"""`dlqctl stats`."""

from __future__ import annotations

import enum
import sys
from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import (
    ConsumerOpt,
    ErrorOpt,
    EventIdOpt,
    FailedAgainOpt,
    MinRetriesOpt,
    SinceOpt,
    StatusOpt,
    UntilOpt,
    build_entry_filter,
    choices,
)
from dlqctl.cli.output import machine
from dlqctl.core.models import RetryFilter, StatsDimension


class StatsFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    NDJSON = "ndjson"
    CSV = "csv"
    OPENMETRICS = "openmetrics"


def stats(
    ctx: typer.Context,
    consumer: ConsumerOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    error: ErrorOpt = None,
    event_id: EventIdOpt = None,
    failed_again: FailedAgainOpt = False,
    min_retries: MinRetriesOpt = None,
    by: Annotated[
        StatsDimension | None,
        typer.Option(
            "--by",
            case_sensitive=False,
            metavar=choices(StatsDimension),
            show_default=False,
            help="Break the matches down by this (hour and day: failures over time;"
            " retries: how many times they were replayed).",
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option("--top", min=1, max=1000, metavar="N", help="How many error groups to show."),
    ] = 10,
    output: Annotated[
        StatsFormat,
        typer.Option(
            "--output",
            "-o",
            case_sensitive=False,
            metavar=choices(StatsFormat),
            help="Output format (openmetrics: for a node-exporter textfile collector).",
        ),
    ] = StatsFormat.TABLE,
) -> None:
    """Count matching entries by consumer and status, with the oldest pending entry, the
    top error groups, and the entries that failed again after a replay.

    Messages that differ only in numbers, ids, hex, quoted values or timestamps form one
    error group. Reads only; safe to run from cron.

    Example: dlqctl stats --since 24h --by hour
    """
    entry_filter = build_entry_filter(
        consumers=consumer,
        statuses=status,
        since=since,
        until=until,
        error=error,
        event_id=event_id,
    )
    settings = app_state(ctx).settings()
    # Lazy (psycopg): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.usecases.inspect import compute_stats

    retry = RetryFilter(failed_again=failed_again, min_retries=min_retries)
    result = compute_stats(settings, entry_filter, by=by, retry=retry)
    if output is StatsFormat.JSON:
        machine.print_json(result.to_json(top=top))
    elif output is StatsFormat.OPENMETRICS:
        sys.stdout.write(machine.openmetrics_text(result, entry_filter.effective_statuses))
    elif output in (StatsFormat.NDJSON, StatsFormat.CSV):
        header, rows = machine.stats_rows(result)
        if output is StatsFormat.CSV:
            machine.print_csv(header, ([machine.csv_cell(v) for v in r.values()] for r in rows))
        else:
            machine.print_ndjson(rows)
    else:
        # Lazy (Rich): importing the CLI stays cheap; see tests/cli/test_startup.py.
        from dlqctl.cli.output.stats import render_stats

        render_stats(result, top=top)
