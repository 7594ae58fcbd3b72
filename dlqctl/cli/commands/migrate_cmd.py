"""`dlqctl migrate`."""

from __future__ import annotations

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import DryRunOpt, SummaryFormat, SummaryOutputOpt


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
    from dlqctl.cli import output as out
    from dlqctl.usecases.migrate import migrate as run_migrations

    settings = app_state(ctx).settings()
    result = run_migrations(settings, dry_run=dry_run)
    if output is SummaryFormat.JSON:
        out.print_json({"applied": result.applied, "pending": result.pending})
        return
    if dry_run:
        if result.pending:
            out.out().print("pending migrations:\n" + "\n".join(f"  {n}" for n in result.pending))
        else:
            out.out().print("the schema is up to date; nothing pending")
        return
    if result.applied:
        out.out().print("applied:\n" + "\n".join(f"  {n}" for n in result.applied))
    else:
        out.out().print("the schema is up to date; nothing to apply")
