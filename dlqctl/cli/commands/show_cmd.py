"""`dlqctl show`."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import EntryIdArg, OutputFormat, OutputOpt, parse_ids
from dlqctl.cli.output import machine


def show(
    ctx: typer.Context,
    entry_id: EntryIdArg,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Show one entry: every column, the error in full, the payload pretty-printed.

    Exits 3 when no entry has the id, 2 when a prefix matches several (they are listed).

    Example: dlqctl show 0193a1b2c3d4 -o json
    """
    (selector,) = parse_ids([entry_id], option="ID")
    settings = app_state(ctx).settings()
    # Lazy (psycopg): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.usecases.inspect import show_entry

    entry = show_entry(settings, selector)
    if output is not OutputFormat.TABLE:
        data = entry.to_json(full=True)
        if output is OutputFormat.JSON:
            machine.print_json(data)
        elif output is OutputFormat.NDJSON:
            machine.print_ndjson([data])
        else:
            machine.print_csv(list(data), [[machine.csv_cell(v) for v in data.values()]])
        return
    # Lazy (Rich): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.entries import render_entry

    render_entry(entry, datetime.now(UTC))
