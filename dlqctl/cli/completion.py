"""Shell completion: the scripts `dlqctl completion SHELL` prints, and value completion.

The scripts call dlqctl back through Typer's completion protocol (``_DLQCTL_COMPLETE=
complete_SHELL``); they are the text Typer itself generates (its ``source_SHELL``
instruction), written out here because Typer's generator is not public API.
tests/cli/test_completions.py checks both that they still equal Typer's and that the
checked-in copies under completions/ are current; ``python -m dlqctl.cli.completion DIR``
(``make completions``) rewrites those.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

COMPLETE_VAR = "_DLQCTL_COMPLETE"
SHELLS = {"bash": "dlqctl.bash", "zsh": "_dlqctl", "fish": "dlqctl.fish"}


_BASH = """\
_dlqctl_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \\
                   COMP_CWORD=$COMP_CWORD \\
                   _DLQCTL_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _dlqctl_completion dlqctl
"""

_ZSH = """\
#compdef dlqctl

_dlqctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _DLQCTL_COMPLETE=complete_zsh dlqctl)
}

compdef _dlqctl_completion dlqctl
"""

_FISH = (
    "complete --command dlqctl --no-files"
    ' --arguments "(env _DLQCTL_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args'
    ' _TYPER_COMPLETE_ARGS=(commandline -cp) dlqctl)"'
    ' --condition "env _DLQCTL_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=is-args'
    ' _TYPER_COMPLETE_ARGS=(commandline -cp) dlqctl"\n'
)

_SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    return _SCRIPTS[shell]


def complete_consumer(ctx: typer.Context, incomplete: str) -> list[str]:
    """Consumer names from the table: fast, read-only, and silent on any error."""
    try:
        # Lazy: completion runs on every Tab press; pydantic-settings and psycopg load only
        # when a consumer name is completed.
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
