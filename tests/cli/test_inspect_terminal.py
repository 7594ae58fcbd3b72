"""Colour only on a terminal and never with NO_COLOR: list, show and stats in real processes.

A pseudo-terminal stands in for the operator's terminal; its control run (colour expected)
proves that the terminal is detected at all.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.cli_helpers import CliEnv, run_dlqctl_process, run_on_terminal
from tests.factories import entry, insert_entries

ID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
COMMANDS = [["list"], ["show", ID], ["stats"], ["stats", "--by", "hour"]]


@pytest.fixture
def two_entries(conn: Any) -> None:
    insert_entries(
        conn,
        [
            entry(dlq_id=uuid.UUID(ID), status="pending"),
            entry(status="replayed", event_payload={"a": [1, True, None]}),
        ],
    )


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run dlqctl with stdout and stderr on a pseudo-terminal; its exit code and the screen."""
    run = run_on_terminal(args, {"COLUMNS": "160", **env}, stdout_too=True)
    return run.exit_code, run.screen


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_colour_on_a_terminal_only_without_no_color(
    two_entries: None, cli_env: CliEnv, args: list[str]
) -> None:
    env = cli_env()
    code, coloured = _on_a_terminal(args, env)
    assert code == 0, coloured
    assert "\x1b[" in coloured
    code, plain = _on_a_terminal(args, {**env, "NO_COLOR": "1"})
    assert code == 0, plain
    assert "\x1b" not in plain
    assert plain.strip()


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_no_escape_codes_when_piped(two_entries: None, cli_env: CliEnv, args: list[str]) -> None:
    result = run_dlqctl_process(*args, env=cli_env(TERM="xterm-256color"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "\x1b" not in result.stdout + result.stderr


def test_usage_errors_are_plain_text_on_a_pipe() -> None:
    result = run_dlqctl_process("list", "--limit", "0", env={"TERM": "xterm-256color"})
    assert result.returncode == 2
    assert "\x1b" not in result.stderr
    assert "Traceback" not in result.stderr
