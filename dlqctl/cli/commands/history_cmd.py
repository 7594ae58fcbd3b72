"""`dlqctl history`."""

from __future__ import annotations

from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import SummaryFormat, SummaryOutputOpt
from dlqctl.cli.output import machine


def history(
    ctx: typer.Context,
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            metavar="ACTION",
            help="Only this action (replay, discard, purge).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, metavar="N", help="At most this many rows.")
    ] = 50,
    output: SummaryOutputOpt = SummaryFormat.TABLE,
) -> None:
    """Show the audit log of write commands, newest first.

    Example: dlqctl history --action replay -o json
    """
    # Lazy (psycopg): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.usecases.audit import history as load_history

    records = load_history(app_state(ctx).settings(), action=action, limit=limit)
    if output is SummaryFormat.JSON:
        machine.print_json({"items": [r.to_json() for r in records]})
        return
    # Lazy (Rich): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.history import render_history

    render_history(records)
