"""`dlqctl discard`."""

from __future__ import annotations

from collections.abc import Callable
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
    build_entry_filter,
)
from dlqctl.cli.signals import stop_on_signals
from dlqctl.core.cleanup import DiscardRequest
from dlqctl.core.runs import RunPlan


def discard(
    ctx: typer.Context,
    ids: IdsArg = None,
    consumer: ConsumerOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    error: ErrorOpt = None,
    event_id: EventIdOpt = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            metavar="TEXT",
            help="Why (stored on each entry and in the audit log).",
            show_default=False,
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: SummaryOutputOpt = SummaryFormat.TABLE,
) -> None:
    """Mark pending entries discarded: they stay for inspection but are never replayed.

    Only pending entries change; the reason and who did it are stored on each entry and in
    the audit log (`dlqctl history`). Explicit ids need no confirmation; filters do.

    Example: dlqctl discard -c orders --error "unknown currency" --reason "bad deploy 1.4.2"
    """
    # Lazy (Rich, psycopg): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.progress import RunConsole
    from dlqctl.cli.output.writes import end_cleanup_run, render_cleanup_result
    from dlqctl.usecases.cleanup import discard as run_discard

    entry_filter = build_entry_filter(
        consumers=consumer,
        statuses=status,
        since=since,
        until=until,
        error=error,
        event_id=event_id,
        ids=ids,
    )
    request = DiscardRequest(entry_filter=entry_filter, reason=reason, dry_run=dry_run)
    settings = app_state(ctx).settings()
    ask: Callable[[RunPlan], None] = confirm_run(
        verb="discard", has_ids=bool(entry_filter.ids), dry_run=dry_run, yes=yes
    )
    with (
        stop_on_signals() as stop,
        RunConsole("discarding", confirm=ask) as console,
    ):
        result = run_discard(settings, request, listener=console, stop=stop)
    render_cleanup_result(result, output.value)
    end_cleanup_run(result)
