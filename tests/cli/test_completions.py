"""Shell completion: checked-in scripts are current, and completion answers from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlqctl.cli.completion import SHELLS, completion_script
from dlqctl.embedded.process import free_port
from tests.cli_helpers import CliEnv, run_dlqctl_process
from tests.factories import entry, insert_entries

COMPLETIONS = Path(__file__).resolve().parents[2] / "completions"


@pytest.mark.parametrize(("shell", "filename"), sorted(SHELLS.items()))
def test_checked_in_scripts_match_the_cli(shell: str, filename: str) -> None:
    assert (COMPLETIONS / filename).read_text() == completion_script(shell), (
        "completions/ is stale: run `make completions`"
    )


def _complete_bash(words: str, env: dict[str, str] | None = None) -> list[str]:
    parts = words.split(" ")
    result = run_dlqctl_process(
        env={
            "_DLQCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
            **(env or {}),
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.split()


def test_bash_completes_commands_and_options() -> None:
    assert _complete_bash("dlqctl mig") == ["migrate"]
    assert "--action" in _complete_bash("dlqctl history --a")


def test_consumer_names_complete_from_the_table(conn: Any, cli_env: CliEnv) -> None:
    insert_entries(
        conn,
        [entry(consumer=name) for name in ("orders", "orders-v2", "payments", "orders")],
    )
    env = cli_env()
    assert _complete_bash("dlqctl list -c ord", env) == ["orders", "orders-v2"]
    assert _complete_bash("dlqctl replay --consumer p", env) == ["payments"]
    assert _complete_bash("dlqctl list -s re", env) == ["replayed"]


def test_consumer_completion_is_silent_when_the_database_is_down() -> None:
    env = {"DLQCTL_DATABASE_URL": f"postgresql://u:pw@127.0.0.1:{free_port()}/x"}
    assert _complete_bash("dlqctl list -c ord", env) == []
