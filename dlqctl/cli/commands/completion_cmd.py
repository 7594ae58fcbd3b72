"""`dlqctl completion`."""

from __future__ import annotations

import enum
import sys
from typing import Annotated

import typer

from dlqctl.cli.completion import completion_script


class Shell(enum.StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def completion(
    shell: Annotated[
        Shell,
        typer.Argument(
            metavar="SHELL",
            case_sensitive=False,
            show_default=False,
            help="The shell to complete in.",
        ),
    ],
) -> None:
    """Print the shell completion script for bash, zsh or fish.

    It completes commands, options, --status values and --consumer names (read from the
    table: quickly, read-only, silently on any error). Install it once; new shells load it:

    \b
    bash  dlqctl completion bash > ~/.local/share/bash-completion/completions/dlqctl
    zsh   dlqctl completion zsh > ~/.zfunc/_dlqctl   (with ~/.zfunc on your $fpath)
    fish  dlqctl completion fish > ~/.config/fish/completions/dlqctl.fish

    Example: dlqctl completion fish > ~/.config/fish/completions/dlqctl.fish
    """
    sys.stdout.write(completion_script(shell.value))
