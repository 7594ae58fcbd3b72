"""Start-up cost: what a fresh interpreter loads to run the CLI.

The reason dlqctl imports some modules inside functions: `dlqctl --help` and short commands
must not pay for psycopg, the Kafka client, Rich and pydantic-settings (each adds tens to
hundreds of milliseconds), and machine output (-o json, openmetrics) must not pay for Rich.
A command's module is imported only when that command is looked up, and `dlqctl --help`
lists the commands from the summaries in dlqctl/cli/app.py's COMMANDS (checked here to
give the lines each command's own help would).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.core import TyperCommand

from dlqctl.cli import app as app_module
from dlqctl.cli.app import COMMANDS as COMMAND_TABLE
from dlqctl.cli.app import app, load_command
from tests.factories import entry, insert_entries

HEAVY = ("psycopg", "confluent_kafka", "rich", "pydantic_settings")
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _modules_after(code: str, env: dict[str, str] | None = None, *, full: bool = False) -> set[str]:
    """The top-level packages (``full``: the modules) a fresh interpreter has loaded after
    running ``code``."""
    report = "import json, sys; print(json.dumps(sorted(sys.modules)), file=sys.__stderr__)"
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stderr.strip().splitlines()[-1])
    return set(loaded) if full else {name.split(".")[0] for name in loaded}


def _run_cli(*args: str) -> str:
    """Code that runs the CLI in-process (with the real error boundary) and returns."""
    return (
        "from dlqctl.cli.app import app\n"
        f"code = app({list(args)!r}, prog_name='dlqctl', standalone_mode=False)\n"
        "assert code == 0, code"
    )


def test_importing_the_cli_loads_no_heavy_library() -> None:
    loaded = _modules_after("import dlqctl.cli.app")
    assert "dlqctl" in loaded
    assert not loaded & set(HEAVY)


def test_help_of_every_command_loads_no_heavy_library() -> None:
    code = "\n".join(
        [
            "from dlqctl.cli.app import app",
            f"for args in [['--help'], *[[name, '--help'] for name in {COMMANDS!r}]]:",
            "    assert app(args, prog_name='dlqctl', standalone_mode=False) == 0, args",
        ]
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY)


def _command_modules(loaded: set[str]) -> set[str]:
    return {name for name in loaded if name.startswith("dlqctl.cli.commands.")}


def test_help_imports_no_command_module() -> None:
    for args in (["--help"], []):  # no arguments: the same help
        code = "\n".join(
            [
                "from dlqctl.cli.app import app",
                f"assert app({args!r}, prog_name='dlqctl', standalone_mode=False) in (0, 2)",
            ]
        )
        loaded = _modules_after(code, full=True)
        assert _command_modules(loaded) == set(), args
        assert "logging" not in loaded


def test_a_command_imports_its_own_module_only() -> None:
    loaded = _modules_after(_run_cli("list", "--help"), full=True)
    assert _command_modules(loaded) == {"dlqctl.cli.commands.list_cmd"}


def test_every_command_module_is_registered() -> None:
    modules = {path.stem for path in Path(app_module.__file__).with_name("commands").glob("*.py")}
    assert {entry.module for entry in COMMAND_TABLE.values()} == modules - {"__init__"}
    assert list(COMMANDS) == sorted(COMMAND_TABLE)
    for name in COMMAND_TABLE:
        assert load_command(name).name == name


@pytest.mark.parametrize("name", sorted(COMMAND_TABLE))
def test_each_summary_gives_the_line_of_the_commands_own_help(name: str) -> None:
    """The summary in COMMANDS, shortened as the help listing shortens it, equals the short
    help of the command itself, at any width."""
    summary = TyperCommand(name=name, help=COMMAND_TABLE[name].summary)
    real = load_command(name)
    for limit in range(10, 240):
        assert summary.get_short_help_str(limit) == real.get_short_help_str(limit), limit


@pytest.mark.parametrize("width", [40, 60, 80, 100, 200])
def test_help_lists_the_commands_as_if_each_were_loaded(width: int) -> None:
    group = typer.main.get_command(app)
    listed = group.get_help(typer.Context(group, info_name="dlqctl", terminal_width=width))
    assert "Commands:" in listed
    for name in COMMAND_TABLE:
        group.commands[name]  # type: ignore[attr-defined]  # loads the command
    loaded = group.get_help(typer.Context(group, info_name="dlqctl", terminal_width=width))
    assert listed == loaded


def test_machine_output_module_does_not_load_rich() -> None:
    assert "rich" not in _modules_after("import dlqctl.cli.output.machine")


@pytest.mark.parametrize(
    "args",
    [
        ("list", "-o", "json"),
        ("list", "-o", "ndjson", "--all"),
        ("list", "-o", "csv"),
        ("show", "-o", "json"),
        ("stats", "-o", "openmetrics"),
        ("stats", "-o", "json"),
    ],
    ids=" ".join,
)
def test_machine_output_does_not_load_rich(conn: Any, db_url: str, args: tuple[str, ...]) -> None:
    (dlq_id,) = insert_entries(conn, [entry(consumer="orders")])
    if args[0] == "show":
        args = (*args, str(dlq_id))
    loaded = _modules_after(_run_cli(*args), env={"DLQCTL_DATABASE_URL": db_url})
    assert "psycopg" in loaded
    assert "rich" not in loaded
