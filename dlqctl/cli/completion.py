"""Shell completion: the checked-in scripts under completions/, and value completion.

``python -m dlqctl.cli.completion DIR`` writes the bash, zsh and fish scripts (``make
completions``); a test checks the checked-in ones match what the current CLI generates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

PROG_NAME = "dlqctl"
COMPLETE_VAR = "_DLQCTL_COMPLETE"
SHELLS = {"bash": "dlqctl.bash", "zsh": "_dlqctl", "fish": "dlqctl.fish"}


def completion_script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def complete_consumer(ctx: typer.Context, incomplete: str) -> list[str]:
    """Consumer names from the table: fast, read-only, and silent on any error."""
    try:
        from dlqctl.core.settings import load_settings
        from dlqctl.usecases.completion import complete_consumers

        root = ctx.find_root().params
        settings = load_settings(
            {"profile": root.get("profile"), "database_url": root.get("database_url")}
        ).settings
        return complete_consumers(settings, incomplete)
    except Exception:  # completion must never print or fail
        return []


def write_scripts(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for shell, filename in SHELLS.items():
        (directory / filename).write_text(completion_script(shell))


if __name__ == "__main__":
    write_scripts(Path(sys.argv[1] if len(sys.argv) > 1 else "completions"))
