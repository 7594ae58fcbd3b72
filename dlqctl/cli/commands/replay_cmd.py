"""`dlqctl replay`."""

from __future__ import annotations

import math
from pathlib import Path
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
    parse_duration_option,
)
from dlqctl.cli.signals import stop_on_signals
from dlqctl.core.errors import EXIT_INTERRUPTED, RunEnded
from dlqctl.core.replay import ReplayRequest

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
            metavar="TOPIC",
            show_default=False,
            help="Publish every entry to this topic (default: the topic it was consumed from,"
            " else the consumer's topic in DLQCTL_TOPIC_MAP).",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            metavar="PER_SECOND",
            help="At most this many messages per second.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=MAX_BATCH_SIZE,
            metavar="N",
            help="Entries per transaction (claimed, published, marked together).",
        ),
    ] = 1000,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            metavar="N",
            help="At most this many entries, oldest first.",
            show_default=False,
        ),
    ] = None,
    canary: Annotated[
        int | None,
        typer.Option(
            "--canary",
            min=1,
            metavar="N",
            help="Replay the first N entries, wait, and send the rest only if none of them"
            " failed again (exit 1 otherwise).",
            show_default=False,
        ),
    ] = None,
    canary_group: Annotated[
        str | None,
        typer.Option(
            "--canary-group",
            metavar="GROUP",
            help="With --canary: wait until this consumer group has committed past every"
            " canary message (at most --canary-wait).",
            show_default=False,
        ),
    ] = None,
    canary_wait: Annotated[
        str | None,
        typer.Option(
            "--canary-wait",
            metavar="DURATION",
            help="With --canary: how long to wait (for the group, or before checking"
            " without one), e.g. 30s or 5m. [default: 2m]",
            show_default=False,
        ),
    ] = None,
    plan_out: Annotated[
        Path | None,
        typer.Option(
            "--plan-out",
            metavar="FILE",
            help="With --dry-run: write the selection to FILE as a plan to review and replay"
            " later with --plan (never overwrites a file).",
            show_default=False,
        ),
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            metavar="FILE",
            help="Replay exactly the entries of this plan, to the topics it names; entries"
            " changed since it was made are skipped.",
            show_default=False,
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
    in-flight batch (exit 130). --canary N sends N first and stops if any fails again;
    --dry-run --plan-out FILE freezes the selection for review, --plan FILE replays it.

    Example: dlqctl replay -c orders --error "timed out" --since 2h --canary 5 --yes
    """
    # Lazy (Rich, psycopg, confluent_kafka): importing the CLI stays cheap; see test_startup.py.
    from dlqctl.cli.output.console import note
    from dlqctl.cli.output.progress import RunConsole
    from dlqctl.cli.output.replay import render_plan_details, render_replay_report
    from dlqctl.core.canary import DEFAULT_CANARY_WAIT, Canary
    from dlqctl.usecases.plans import load_plan
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
    if canary is None:
        for name, value in (("--canary-group", canary_group), ("--canary-wait", canary_wait)):
            if value is not None:
                raise bad(name, "goes only with --canary N")
    if canary_group is not None and not canary_group.strip():
        raise bad("--canary-group", "must not be empty")
    wait_text = None if canary_wait is None else canary_wait.strip()
    wait = (
        DEFAULT_CANARY_WAIT
        if wait_text is None
        else parse_duration_option("--canary-wait", wait_text)
    )
    frozen = load_plan(plan) if plan is not None else None
    # Checks the combinations (--plan with filters, --plan-out without --dry-run, …).
    request = ReplayRequest(
        entry_filter,
        topic=topic,
        rate=rate,
        batch_size=batch_size,
        limit=limit,
        dry_run=dry_run,
        canary=None
        if canary is None
        else Canary(size=canary, group=canary_group, wait=wait, wait_text=wait_text),
        plan=frozen,
        plan_out=plan_out,
    )
    ask = confirm_run(
        verb="replay", has_ids=bool(ids), dry_run=dry_run, yes=yes, details=render_plan_details
    )
    settings = app_state(ctx).settings()
    with (
        stop_on_signals() as stop,
        RunConsole("replaying", confirm=ask, with_rate=True) as console,
    ):
        report = run_replay(settings, request, listener=console, stop=stop)
    render_replay_report(report, output.value)
    interrupted = report.exit_code == EXIT_INTERRUPTED
    if interrupted and report.error:
        note(report.error)  # what the interrupted run did: part of the summary, not an error
    if report.exit_code:
        raise RunEnded(report.exit_code, None if interrupted else report.error)
