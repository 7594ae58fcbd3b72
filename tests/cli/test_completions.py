"""Shell completion: the scripts `dlqctl completion` prints, the checked-in copies, and the
answers the CLI gives a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dlqctl.cli.completion import COMPLETE_VAR, SHELLS, completion_script
from dlqctl.embedded.process import free_port
from tests.cli_helpers import CliEnv, run_dlqctl_process
from tests.factories import entry, insert_entries

COMPLETIONS = Path(__file__).resolve().parents[2] / "completions"


@pytest.mark.parametrize(("shell", "filename"), sorted(SHELLS.items()))
def test_completion_prints_the_checked_in_script(shell: str, filename: str) -> None:
    result = run_dlqctl_process("completion", shell)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == completion_script(shell)
    assert (COMPLETIONS / filename).read_text() == result.stdout, (
        "completions/ is stale: run `make completions`"
    )


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_scripts_are_what_typer_generates(shell: str) -> None:
    """The scripts speak the protocol of the installed Typer (its own `source` output)."""
    result = run_dlqctl_process(env={COMPLETE_VAR: f"source_{shell}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == completion_script(shell).strip()


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = run_dlqctl_process("completion", "tcsh")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


def test_the_bash_script_completes_in_bash() -> None:
    """Sourced into a real bash, the script's function fills COMPREPLY from dlqctl."""
    script = (
        'source <(dlqctl completion bash); COMP_WORDS=(dlqctl completion "");'
        ' COMP_CWORD=2; _dlqctl_completion dlqctl; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["bash", "zsh", "fish"]


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
    assert _complete_bash("dlqctl compl") == ["completion"]
    assert _complete_bash("dlqctl completion ") == ["bash", "zsh", "fish"]


def test_bash_completes_this_rounds_command_and_flags() -> None:
    assert _complete_bash("dlqctl ed") == ["edit"]
    assert {"--from-file", "--set-header", "--unset-header", "--revert"} <= set(
        _complete_bash("dlqctl edit --")
    )
    assert {"--canary", "--canary-group", "--canary-wait"} <= set(
        _complete_bash("dlqctl replay --can")
    )
    assert {"--plan", "--plan-out"} <= set(_complete_bash("dlqctl replay --pl"))
    assert {"--failed-again", "--min-retries"} <= set(_complete_bash("dlqctl stats --"))


@pytest.mark.parametrize(
    ("shell", "env"),
    [
        ("zsh", {"_TYPER_COMPLETE_ARGS": "dlqctl mig"}),
        ("fish", {"_TYPER_COMPLETE_ARGS": "dlqctl mig", "_TYPER_COMPLETE_FISH_ACTION": "get-args"}),
    ],
)
def test_zsh_and_fish_get_answers_through_the_scripts_variables(
    shell: str, env: dict[str, str]
) -> None:
    assert all(name in completion_script(shell) for name in env)
    result = run_dlqctl_process(env={COMPLETE_VAR: f"complete_{shell}", **env})
    assert result.returncode == 0, result.stderr
    assert "migrate" in result.stdout


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
