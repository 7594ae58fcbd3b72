"""`dlqctl purge`."""

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
    QuietOpt,
    SinceOpt,
    SummaryFormat,
    SummaryOutputOpt,
    UntilOpt,
    YesOpt,
    build_entry_filter,
    choices,
    parse_duration_option,
)
from dlqctl.cli.signals import stop_on_signals
from dlqctl.core.cleanup import DEFAULT_PURGE_BATCH, MAX_BATCH, PurgeRequest
from dlqctl.core.models import Status
from dlqctl.core.runs import RunPlan
from dlqctl.core.timeparse import DURATION_HELP

PENDING_WARNING = (
    "--status pending was given: this also deletes PENDING entries, events that were never"
    " replayed; they cannot be recovered afterwards"
)


def purge(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            show_default=False,
            help=f"Delete entries whose failed_at is older than this: {DURATION_HELP}.",
        ),
    ],
    consumer: ConsumerOpt = None,
    status: Annotated[
        list[Status] | None,
        typer.Option(
            "--status",
            "-s",
            case_sensitive=False,
            metavar=choices(Status),
            show_default=False,
            help="Only this status (repeatable). Default: replayed and discarded; pending"
            " entries are deleted only when --status pending is given.",
        ),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    error: ErrorOpt = None,
    event_id: EventIdOpt = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=MAX_BATCH,
            metavar="N",
            help="Rows deleted per transaction (each batch commits on its own).",
        ),
    ] = DEFAULT_PURGE_BATCH,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    quiet: QuietOpt = False,
    output: SummaryOutputOpt = SummaryFormat.TABLE,
) -> None:
    """Delete old entries in short batches (default: replayed and discarded ones).

    Age is by failed_at. Each batch is its own short transaction and rows a running replay
    holds are skipped, not waited for, so services keep writing while it runs. --dry-run
    shows the counts per consumer and status and the age range, and deletes nothing.

    Example: dlqctl purge --older-than 30d --yes --quiet
    """
    # Lazy (Rich, psycopg): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.progress import RunConsole
    from dlqctl.cli.output.writes import end_cleanup_run, render_cleanup_result
    from dlqctl.usecases.cleanup import purge as run_purge

    entry_filter = build_entry_filter(
        consumers=consumer,
        statuses=status,
        since=since,
        until=until,
        error=error,
        event_id=event_id,
    )
    request = PurgeRequest(
        entry_filter=entry_filter,
        older_than=parse_duration_option("--older-than", older_than),
        older_than_text=older_than.strip(),
        batch_size=batch_size,
        dry_run=dry_run,
    )
    settings = app_state(ctx).settings()
    ask: Callable[[RunPlan], None] = confirm_run(
        verb="delete",
        has_ids=False,
        dry_run=dry_run,
        yes=yes,
        warning=PENDING_WARNING if request.deletes_pending else None,
    )
    with (
        stop_on_signals() as stop,
        RunConsole("deleting", confirm=ask, show=not quiet) as console,
    ):
        result = run_purge(settings, request, listener=console, stop=stop)
    if not (quiet and output is SummaryFormat.TABLE):
        render_cleanup_result(result, output.value)
    end_cleanup_run(result)
