"""`dlqctl backfill`."""

from __future__ import annotations

from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import DryRunOpt, QuietOpt, SummaryFormat, SummaryOutputOpt
from dlqctl.cli.signals import stop_on_signals
from dlqctl.core.backfill import DEFAULT_BACKFILL_BATCH, MAX_BACKFILL_BATCH, BackfillRequest
from dlqctl.core.errors import RunEnded


def backfill(
    ctx: typer.Context,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=MAX_BACKFILL_BATCH,
            metavar="N",
            help="Rows per transaction (each batch commits on its own).",
        ),
    ] = DEFAULT_BACKFILL_BATCH,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
    output: SummaryOutputOpt = SummaryFormat.TABLE,
) -> None:
    """Store the error fingerprint of rows other services wrote, so stats stays fast.

    stats groups errors correctly without it (it fingerprints such rows as it reads them),
    but on a big table it is fast only for rows that carry a stored fingerprint. Run it once
    after `dlqctl migrate`, then regularly (cron, next to purge). Short batches; rows other
    transactions hold are left for the next run; services keep writing while it runs.

    Example: dlqctl backfill --quiet
    """
    # Lazy (Rich, psycopg): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.console import note
    from dlqctl.cli.output.progress import RunConsole
    from dlqctl.cli.output.writes import render_write_result
    from dlqctl.usecases.fingerprints import BackfillPlan
    from dlqctl.usecases.fingerprints import backfill as run_backfill

    request = BackfillRequest(batch_size=batch_size, dry_run=dry_run)
    settings = app_state(ctx).settings()
    with (
        stop_on_signals() as stop,
        RunConsole[BackfillPlan](
            "fingerprinting", confirm=lambda plan: None, show=not quiet
        ) as console,
    ):
        result = run_backfill(settings, request, listener=console, stop=stop)
    if output is SummaryFormat.JSON or not quiet:
        render_write_result(result.write, output.value)
    if result.interrupted:
        note(result.write.error or "interrupted")
        raise RunEnded(result.exit_code)
    if result.exit_code:
        raise RunEnded(result.exit_code, result.write.error)
