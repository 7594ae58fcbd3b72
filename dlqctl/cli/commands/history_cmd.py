"""`dlqctl history`."""

from __future__ import annotations

from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import SummaryFormat, SummaryOutputOpt


def history(
    ctx: typer.Context,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", help="Only this action (replay, discard, purge).", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many rows.")
    ] = 50,
    output: SummaryOutputOpt = SummaryFormat.TABLE,
) -> None:
    """Show the audit log of write commands, newest first.

    Example: dlqctl history --action replay -o json
    """
    from dlqctl.cli import output as out
    from dlqctl.usecases.audit import history as load_history

    records = load_history(app_state(ctx).settings(), action=action, limit=limit)
    if output is SummaryFormat.JSON:
        out.print_json({"items": [r.to_json() for r in records]})
    else:
        out.render_history(records)
