"""`dlqctl consume` at the CLI edge: handler errors exit 2 with one line; setup errors."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from dlqctl.embedded.tansu import EmbeddedBroker
from tests.kafka_helpers import create_topic

ARGS = ["consume", "--consumer", "orders-projector", "--topic", "orders.v1"]


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("tests.cli.no_such_module:f", "cannot import handler module 'tests.cli.no_such_module'"),
        (
            "tests.cli.broken_handler:f",
            "importing handler module 'tests.cli.broken_handler' failed:"
            " RuntimeError: missing ORDERS_API_URL",
        ),
        ("json:no_such_function", "'json' has no attribute 'no_such_function'"),
        ("json.decoder:NaN", "handler 'json.decoder:NaN' is not callable"),
        ("json", "is not module:function"),
        (":loads", "is not module:function"),
    ],
)
def test_a_handler_that_cannot_be_loaded_exits_2_with_one_line(
    cli: Any, handler: str, message: str
) -> None:
    result = cli(*ARGS, "--handler", handler)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(cli: Any) -> None:
    result = cli("consume", "--consumer", "x", "--topic", "t")
    assert result.exit_code == 2
    assert "--handler" in result.stderr
    result = cli(*ARGS, "--handler", "json:loads", "--retries", "-1")
    assert result.exit_code == 2
    assert "--retries" in result.stderr


def test_without_bootstrap_servers_it_says_what_to_set(cli: Any) -> None:
    result = cli(*ARGS, "--handler", "json:loads")
    assert result.exit_code == 2
    assert "DLQCTL_KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def test_a_consumer_name_the_table_cannot_hold_is_refused(cli: Any) -> None:
    result = cli(
        "consume",
        "--consumer",
        "x" * 300,
        "--topic",
        "t",
        "--handler",
        "json:loads",
        env={"DLQCTL_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
    )
    assert result.exit_code == 2
    assert "longer than 255" in result.stderr


def test_an_unmigrated_database_exits_1_asking_for_migrate(
    cli: Any, broker: EmbeddedBroker, empty_db_url: str
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    env = {
        "DLQCTL_DATABASE_URL": empty_db_url,
        "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
    }
    result = cli("consume", "--consumer", "c", "--topic", topic, "--handler", "json:loads", env=env)
    assert result.exit_code == 1, result.output
    assert "dlqctl migrate" in result.stderr
    assert "Traceback" not in result.output


def test_bad_operations_flags_exit_2(cli: Any) -> None:
    for flags, named in (
        (["--log-format", "yaml"], "--log-format"),
        (["--metrics-port", "70000"], "--metrics-port"),
        (["--metrics-port", "-1"], "--metrics-port"),
    ):
        result = cli(*ARGS, "--handler", "json:loads", *flags)
        assert result.exit_code == 2, result.output
        assert named in result.stderr


def test_a_metrics_port_in_use_exits_1_with_one_line(cli: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(
            *ARGS,
            "--handler",
            "json:loads",
            "--metrics-port",
            str(port),
            env={"DLQCTL_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
        )
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in line


def test_with_json_logs_the_closing_error_is_a_json_line_too(
    cli: Any, broker: EmbeddedBroker, empty_db_url: str
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    env = {
        "DLQCTL_DATABASE_URL": empty_db_url,
        "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
    }
    args = ["consume", "-c", "c", "-t", topic, "--handler", "json:loads", "--log-format", "json"]
    result = cli(*args, env=env)
    assert result.exit_code == 1, result.output
    records = [json.loads(line) for line in result.stderr.strip().splitlines()]
    assert records[-1]["level"] == "error"
    assert "dlqctl migrate" in records[-1]["msg"]
    assert records[-1]["exit_code"] == 1
    # The next command logs as text again (the formatter is put back).
    plain = cli("consume", "-c", "c", "-t", topic, "--handler", "json:loads", env=env)
    assert plain.exit_code == 1
    assert plain.stderr.strip().splitlines()[-1].startswith("Error: ")
