"""The CLI edge: exit codes, one-line errors, no secrets, config and migrate output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dlqctl import __version__
from dlqctl.embedded.process import free_port
from tests.cli_helpers import run_dlqctl_process


def test_version_and_help(cli: Any) -> None:
    result = cli("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"dlqctl {__version__}"
    result = cli("--help")
    assert result.exit_code == 0, result.output
    assert "migrate" in result.stdout


def test_unknown_command_is_a_usage_error(cli: Any) -> None:
    result = cli("explode")
    assert result.exit_code == 2
    assert "No such command" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_database_exits_1_with_one_line_and_no_password() -> None:
    port = free_port()
    url = f"postgresql://alice:s3cr3t-pw@127.0.0.1:{port}/orders_db"
    result = run_dlqctl_process("migrate", env={"DLQCTL_DATABASE_URL": url})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}/orders_db" in lines[0]
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_unreachable_database_from_flag_never_shows_password() -> None:
    port = free_port()
    result = run_dlqctl_process(
        "--database-url", f"host=127.0.0.1 port={port} dbname=x password='top secret'", "migrate"
    )
    assert result.returncode == 1
    assert "top secret" not in result.stderr and "secret" not in result.stderr.replace("***", "")


def test_malformed_database_url_is_a_usage_error_without_the_password() -> None:
    result = run_dlqctl_process(
        "migrate", env={"DLQCTL_DATABASE_URL": "postgresql://bob:pa55word@[::1/db"}
    )
    assert result.returncode == 2, result.stderr
    assert "pa55word" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_malformed_settings_exit_2(cli: Any) -> None:
    result = cli("config", env={"DLQCTL_KAFKA_CONFIG": '{"sasl.password": "x'})
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: DLQCTL_KAFKA_CONFIG is not valid: it must be a JSON object"
    )


def test_config_shows_sources_and_masks_secrets(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "dlqctl.toml"
    config.write_text(
        'database_url = "postgresql://app:filepass@db.internal/orders"\n'
        '[kafka]\n"sasl.password" = "kafkapass"\n"sasl.username" = "app"\n'
    )
    result = cli(
        "config",
        "-o",
        "json",
        env={
            "DLQCTL_CONFIG": str(config),
            "DLQCTL_ACTOR": "oncall",
            "DLQCTL_KAFKA_PRODUCER_CONFIG": '{"ssl.key.password": "keypass"}',
        },
    )
    assert result.exit_code == 0, result.output
    for secret in ("filepass", "kafkapass", "keypass"):
        assert secret not in result.output
    data = json.loads(result.stdout)
    settings = data["settings"]
    assert settings["database_url"] == {
        "value": "postgresql://app:***@db.internal/orders",
        "source": f"file {config}",
    }
    assert settings["actor"] == {"value": "oncall", "source": "DLQCTL_ACTOR"}
    assert settings["kafka_delivery_timeout"]["source"] == "default"
    assert json.loads(settings["kafka_config"]["value"])["sasl.username"] == "app"


def test_config_table(cli: Any) -> None:
    result = cli("--database-url", "postgresql://u:flagpass@h/d", "config")
    assert result.exit_code == 0, result.output
    assert "flagpass" not in result.output
    assert "flag" in result.stdout


@pytest.mark.parametrize("args", [["migrate", "-o", "json"], ["migrate", "--output", "JSON"]])
def test_migrate_json_on_a_fresh_database(cli: Any, empty_db_url: str, args: list[str]) -> None:
    dry = cli(*args, "--dry-run", env={"DLQCTL_DATABASE_URL": empty_db_url})
    assert dry.exit_code == 0, dry.output
    pending = json.loads(dry.stdout)["pending"]
    assert json.loads(dry.stdout)["applied"] == []
    assert pending[0] == "0001_original_dlq"
    result = cli(*args, env={"DLQCTL_DATABASE_URL": empty_db_url})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"applied": pending, "pending": []}
    again = cli(*args, env={"DLQCTL_DATABASE_URL": empty_db_url})
    assert json.loads(again.stdout) == {"applied": [], "pending": []}


def test_migrate_table_output(cli: Any, empty_db_url: str) -> None:
    result = cli("migrate", env={"DLQCTL_DATABASE_URL": empty_db_url})
    assert result.exit_code == 0, result.output
    assert "0004_dlq_indexes" in result.stdout
    assert "\x1b[" not in result.stdout


def test_dlqctl_alone_prints_the_whole_help() -> None:
    result = run_dlqctl_process()
    assert result.returncode in (0, 2), result.stderr
    output = result.stdout + result.stderr
    assert output.startswith("Usage: dlqctl"), output
    assert "\nCommands:\n" in output
    assert "\n  replay " in output
