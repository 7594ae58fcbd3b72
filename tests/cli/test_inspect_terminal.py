"""Colour only on a terminal and never with NO_COLOR: list, show and stats in real processes.

A pseudo-terminal stands in for the operator's terminal; its control run (colour expected)
proves that the terminal is detected at all.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from typing import Any

import pytest

from tests.cli_helpers import run_dlqctl_process
from tests.factories import entry, insert_entries

ID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
COMMANDS = [["list"], ["show", ID], ["stats"], ["stats", "--by", "hour"]]


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run dlqctl with stdout and stderr on a pseudo-terminal; its exit code and output."""
    master, slave = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DLQCTL_", "PG"))}
    full_env.pop("NO_COLOR", None)
    full_env.update({"TERM": "xterm-256color", "COLUMNS": "160", **env})
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlqctl", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=full_env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def env(conn: Any, db_url: str) -> dict[str, str]:
    import uuid

    insert_entries(
        conn,
        [
            entry(dlq_id=uuid.UUID(ID), status="pending"),
            entry(status="replayed", event_payload={"a": [1, True, None]}),
        ],
    )
    return {"DLQCTL_DATABASE_URL": db_url}


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_colour_on_a_terminal_only_without_no_color(env: dict[str, str], args: list[str]) -> None:
    code, coloured = _on_a_terminal(args, env)
    assert code == 0, coloured
    assert "\x1b[" in coloured
    code, plain = _on_a_terminal(args, {**env, "NO_COLOR": "1"})
    assert code == 0, plain
    assert "\x1b" not in plain
    assert plain.strip()


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_no_escape_codes_when_piped(env: dict[str, str], args: list[str]) -> None:
    result = run_dlqctl_process(*args, env={**env, "TERM": "xterm-256color"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "\x1b" not in result.stdout + result.stderr


def test_usage_errors_are_plain_text_on_a_pipe() -> None:
    result = run_dlqctl_process("list", "--limit", "0", env={"TERM": "xterm-256color"})
    assert result.returncode == 2
    assert "\x1b" not in result.stderr
    assert "Traceback" not in result.stderr
