"""`dlqctl config`."""

from __future__ import annotations

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import SummaryFormat, SummaryOutputOpt


def show_config(ctx: typer.Context, output: SummaryOutputOpt = SummaryFormat.TABLE) -> None:
    """Print the effective settings and where each came from (secrets masked).

    Sources: flag > environment (DLQCTL_*) > config file (profile over top level) > default.

    Example: dlqctl --profile prod config
    """
    from dlqctl.cli import output as out

    loaded = app_state(ctx).loaded()
    rows = loaded.describe()
    if output is SummaryFormat.JSON:
        out.print_json(
            {
                "config_file": str(loaded.config_path) if loaded.config_path else None,
                "profile": loaded.profile,
                "settings": {
                    name: {"value": value, "source": source} for name, value, source in rows
                },
            }
        )
        return
    file_line = str(loaded.config_path) if loaded.config_path else "(none found)"
    out.note(f"config file: {file_line}; profile: {loaded.profile or '(none)'}")
    out.out().print(out.key_value_table(None, rows, ("setting", "value", "source")))
