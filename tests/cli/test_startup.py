"""Start-up cost: what a fresh interpreter loads to run the CLI.

The reason dlqctl imports some modules inside functions: `dlqctl --help` and short commands
must not pay for psycopg, the Kafka client, Rich and pydantic-settings (each adds tens to
hundreds of milliseconds), and machine output (-o json, openmetrics) must not pay for Rich.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import typer.main

from dlqctl.cli.app import app
from tests.factories import entry, insert_entries

HEAVY = ("psycopg", "confluent_kafka", "rich", "pydantic_settings")
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _modules_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running ``code``."""
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
    return {name.split(".")[0] for name in loaded}


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
