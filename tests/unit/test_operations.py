"""The consumer's operations pieces on their own: JSON log lines (scrubbed before encoding)
and the metrics endpoint (one registry per consumer, /ready, 404)."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request

import pytest

from dlqctl.core.errors import DlqctlError
from dlqctl.core.logformat import JsonFormatter
from dlqctl.core.secrets import Scrubber
from dlqctl.kafka.metrics import ConsumerSnapshot, OperationsServer, consumer_registry


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("dlqctl.consumer", logging.WARNING, "f.py", 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_json_line_has_ts_level_msg_and_the_extra_fields() -> None:
    record = _record("event %s failed", "e-1", consumer="orders", offset=7, ratio=float("nan"))
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "warning"
    assert data["msg"] == "event e-1 failed"
    assert data["ts"].endswith("Z") and "T" in data["ts"]
    assert (data["consumer"], data["offset"], data["ratio"]) == ("orders", 7, "nan")
    assert data["logger"] == "dlqctl.consumer"


def test_secrets_are_masked_before_json_escapes_them() -> None:
    secret = 'pa"ss\\w0rd-Zx9'
    scrubber = Scrubber([secret])
    record = _record(f"cannot connect with {secret}", error=f"auth {secret}", nested={"k": secret})
    line = JsonFormatter(scrubber).format(record)
    assert secret not in line
    assert json.dumps(secret)[1:-1] not in line  # nor its escaped form
    assert "pa" not in json.loads(line)["error"].replace("***", "")


def test_a_traceback_stays_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_two_consumers_in_one_process_serve_their_own_metrics() -> None:
    handled = {"a": 1, "b": 2}
    ready = {"a": (True, "ready: a"), "b": (False, "not ready: the database is unreachable")}
    servers = [
        OperationsServer(
            consumer_registry(lambda name=name: ConsumerSnapshot(name, handled=handled[name])),
            lambda name=name: ready[name],
            "127.0.0.1",
            0,
        ).start()
        for name in ("a", "b")
    ]
    try:
        a, b = (server.url for server in servers)
        assert a != b
        status, text = _get(f"{a}/metrics")
        assert status == 200
        assert 'dlqctl_consumer_events_handled_total{consumer="a"} 1.0' in text
        assert "# TYPE dlqctl_consumer_lag gauge" in text
        assert 'consumer="b"' not in text
        assert 'dlqctl_consumer_events_handled_total{consumer="b"} 2.0' in _get(f"{b}/metrics")[1]
        assert _get(f"{a}/ready") == (200, "ready: a\n")
        assert _get(f"{b}/ready") == (503, "not ready: the database is unreachable\n")
        assert _get(f"{a}/")[0] == 404
        assert _get(f"{a}/metrics/x")[0] == 404
    finally:
        for server in servers:
            server.stop()


def test_a_port_in_use_is_one_clear_error() -> None:
    first = OperationsServer(
        consumer_registry(lambda: ConsumerSnapshot("a")), lambda: (True, "ok"), "127.0.0.1", 0
    ).start()
    try:
        port = first.address[1]
        with pytest.raises(DlqctlError, match=f"cannot serve metrics on 127.0.0.1:{port}") as err:
            OperationsServer(
                consumer_registry(lambda: ConsumerSnapshot("b")),
                lambda: (True, "ok"),
                "127.0.0.1",
                port,
            )
        assert err.value.exit_code == 1
    finally:
        first.stop()
