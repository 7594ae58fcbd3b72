"""`dlqctl replay`."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from dlqctl.cli.confirm import confirm_run
from dlqctl.cli.context import app_state
from dlqctl.cli.options import (
    ConsumerOpt,
    DryRunOpt,
    ErrorOpt,
    EventIdOpt,
    IdsArg,
    SinceOpt,
    StatusOpt,
    SummaryFormat,
    SummaryOutputOpt,
    UntilOpt,
    YesOpt,
    bad,
    build_entry_filter,
)
from dlqctl.cli.signals import stop_on_signals
from dlqctl.core.errors import EXIT_INTERRUPTED, RunEnded
from dlqctl.core.replay import ReplayPlan, ReplayRequest

MAX_BATCH_SIZE = 10_000


def replay(
    ctx: typer.Context,
    ids: IdsArg = None,
    consumer: ConsumerOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    error: ErrorOpt = None,
    event_id: EventIdOpt = None,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic",
            "-t",
            show_default=False,
            help="Publish every entry to this topic (default: the topic it was consumed from,"
            " else the consumer's topic in DLQCTL_TOPIC_MAP).",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="At most this many messages per second.", show_default=False),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=MAX_BATCH_SIZE,
            help="Entries per transaction (claimed, published, marked together).",
        ),
    ] = 1000,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="At most this many entries, oldest first.", show_default=False
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: SummaryOutputOpt = SummaryFormat.TABLE,
) -> None:
    """Republish entries to Kafka and mark them replayed.

    Selects pending entries (or the statuses given with -s) by ids and/or filters, oldest
    first, and publishes each to --topic, else the topic it was consumed from, else the
    consumer's topic in DLQCTL_TOPIC_MAP. An entry becomes replayed only after the broker
    acknowledged it; failed ones stay as they were (exit 1). Ctrl-C stops after the
    in-flight batch (exit 130).

    Example: dlqctl replay -c orders --error "timed out" --since 2h --yes
    """
    # Lazy (Rich, psycopg, confluent_kafka): importing the CLI stays cheap; see test_startup.py.
    from dlqctl.cli.output.console import note
    from dlqctl.cli.output.progress import RunConsole
    from dlqctl.cli.output.writes import render_routes, render_write_result
    from dlqctl.usecases.replay import replay as run_replay

    entry_filter = build_entry_filter(
        consumers=consumer,
        statuses=status,
        since=since,
        until=until,
        error=error,
        event_id=event_id,
        ids=ids,
    )
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise bad("--rate", "must be a positive number of messages per second")
    if topic is not None and not topic.strip():
        raise bad("--topic", "must not be empty")

    def routes(plan: ReplayPlan) -> None:
        render_routes(plan.routes)

    ask = confirm_run(verb="replay", has_ids=bool(ids), dry_run=dry_run, yes=yes, details=routes)
    settings = app_state(ctx).settings()
    request = ReplayRequest(
        entry_filter, topic=topic, rate=rate, batch_size=batch_size, limit=limit, dry_run=dry_run
    )
    with (
        stop_on_signals() as stop,
        RunConsole("replaying", confirm=ask, with_rate=True) as console,
    ):
        report = run_replay(settings, request, listener=console, stop=stop)
    if dry_run and output is SummaryFormat.TABLE and report.plan.routes:
        render_routes(report.plan.routes, to_stdout=True)
    render_write_result(report.result, output.value)
    interrupted = report.exit_code == EXIT_INTERRUPTED
    if interrupted and report.error:
        note(report.error)  # what the interrupted run did: part of the summary, not an error
    if report.exit_code:
        raise RunEnded(report.exit_code, None if interrupted else report.error)
