"""`dlqctl migrate`."""

from __future__ import annotations

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import DryRunOpt, SummaryFormat, SummaryOutputOpt
from dlqctl.cli.output import machine


def migrate(
    ctx: typer.Context,
    dry_run: DryRunOpt = False,
    output: SummaryOutputOpt = SummaryFormat.TABLE,
) -> None:
    """Apply pending schema migrations (idempotent; keeps existing rows).

    Needs a role that owns table dlq. Indexes are built CONCURRENTLY, so services keep
    writing while it runs.

    Example: dlqctl migrate --dry-run
    """
    # Lazy (psycopg): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.usecases.migrate import migrate as run_migrations

    settings = app_state(ctx).settings()
    result = run_migrations(settings, dry_run=dry_run)
    if output is SummaryFormat.JSON:
        machine.print_json({"applied": result.applied, "pending": result.pending})
        return
    # Lazy (Rich): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.console import out

    if dry_run:
        if result.pending:
            out().print("pending migrations:\n" + "\n".join(f"  {n}" for n in result.pending))
        else:
            out().print("the schema is up to date; nothing pending")
        return
    if result.applied:
        out().print("applied:\n" + "\n".join(f"  {n}" for n in result.applied))
    else:
        out().print("the schema is up to date; nothing to apply")
