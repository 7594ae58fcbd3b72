"""Every option that takes a value says in --help what the value is (TOPIC, N, DURATION, or
its choices as a|b|c), not the type Typer would print (<str>, <int range>, <table|json>)."""

from __future__ import annotations

import re
from typing import Any

import typer.main

from dlqctl.cli.app import app
from tests.cli_helpers import run_dlqctl_process


def _options() -> list[tuple[str, Any]]:
    """(command path, parameter) of every option of every command, global ones included."""
    found: list[tuple[str, Any]] = []

    def visit(path: str, command: Any) -> None:
        found.extend((path, param) for param in command.params if param.param_type_name == "option")
        for name, sub in getattr(command, "commands", {}).items():
            visit(f"{path} {name}", sub)

    visit("dlqctl", typer.main.get_command(app))
    return found


def test_every_option_with_a_value_has_a_metavar() -> None:
    missing = [
        f"{path} {'/'.join(param.opts)}"
        for path, param in _options()
        if not param.is_flag and not param.count and not param.metavar
    ]
    assert missing == [], "give these options a metavar (see dlqctl/cli/options.py)"


def test_metavars_are_names_or_choices() -> None:
    for path, param in _options():
        if param.metavar:
            assert "<" not in param.metavar and " " not in param.metavar, (path, param.opts)


def test_help_shows_no_type_names() -> None:
    result = run_dlqctl_process("replay", "--help", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    for line in (
        "-t, --topic TOPIC",
        "--rate PER_SECOND",
        "--batch-size N",
        "--limit N",
        "-o, --output table|json ",
        "-s, --status pending|replayed|discarded",
    ):
        assert line in result.stdout
    options = result.stdout.split("Options:", 1)[1]
    assert re.findall(r"<[a-z][^>\s]*>", options) == [], options
