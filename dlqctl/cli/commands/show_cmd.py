"""`dlqctl show`."""

from __future__ import annotations

from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import SummaryFormat, SummaryOutputOpt


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
    output: SummaryOutputOpt = SummaryFormat.TABLE,
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
    if output is SummaryFormat.JSON:
        from dlqctl.cli.machine import print_json

        print_json(entry.to_json(full=True))
        return
    from datetime import UTC, datetime

    from dlqctl.cli import output as out

    out.render_entry(entry, datetime.now(UTC))
