"""`dlqctl config`."""

from __future__ import annotations

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import SummaryFormat, SummaryOutputOpt
from dlqctl.cli.output import machine


def show_config(ctx: typer.Context, output: SummaryOutputOpt = SummaryFormat.TABLE) -> None:
    """Print the effective settings and where each came from (secrets masked).

    Sources: flag > environment (DLQCTL_*) > config file (profile over top level) > default.

    Example: dlqctl --profile prod config
    """
    loaded = app_state(ctx).loaded()
    rows = loaded.describe()
    if output is SummaryFormat.JSON:
        machine.print_json(
            {
                "config_file": str(loaded.config_path) if loaded.config_path else None,
                "profile": loaded.profile,
                "settings": {
                    name: {"value": value, "source": source} for name, value, source in rows
                },
            }
        )
        return
    # Lazy (Rich): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.console import key_value_table, note, out

    file_line = str(loaded.config_path) if loaded.config_path else "(none found)"
    note(f"config file: {file_line}; profile: {loaded.profile or '(none)'}")
    out().print(key_value_table(None, rows, ("setting", "value", "source")))
