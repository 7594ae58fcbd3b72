"""`dlqctl show`."""

from __future__ import annotations

from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import OutputFormat, OutputOpt


def show(
    ctx: typer.Context,
    entry_id: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            show_default=False,
            help="Entry id or a unique prefix (at least 8 hex digits, hyphens optional).",
        ),
    ],
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Show one entry: every column, the error in full, the payload pretty-printed.

    Exits 3 when no entry has the id, 2 when a prefix matches several (they are listed).

    Example: dlqctl show 0193a1b2c3d4 -o json
    """
    from dlqctl.cli.options import parse_ids

    (selector,) = parse_ids([entry_id], option="ID")
    settings = app_state(ctx).settings()

    from dlqctl.usecases.inspect import show_entry

    entry = show_entry(settings, selector)
    if output is not OutputFormat.TABLE:
        from dlqctl.cli import machine

        data = entry.to_json(full=True)
        if output is OutputFormat.JSON:
            machine.print_json(data)
        elif output is OutputFormat.NDJSON:
            machine.print_ndjson([data])
        else:
            machine.print_csv(list(data), [[machine.csv_cell(v) for v in data.values()]])
        return
    from datetime import UTC, datetime

    from dlqctl.cli import output as out

    out.render_entry(entry, datetime.now(UTC))
