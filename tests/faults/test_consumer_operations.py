"""`dlqctl consume` operated as a service, over HTTP against a real process: metrics move as
events are handled and stored, /ready turns 503 while PostgreSQL is down and 200 once it is
back, and every log line is a JSON object with no secret in it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dlqctl.db.migrations import migrate
from dlqctl.embedded.postgres import EmbeddedPostgres
from dlqctl.embedded.tansu import EmbeddedBroker
from tests.consumer_helpers import encode, event
from tests.factories import TEST_CONSUMER_CONFIG
from tests.kafka_helpers import create_topic, produce, unique_name

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Zx9kQ-w8Lr2-s3cret"  # in the URL; trust authentication never asks for it
CONSUMER = "orders-projector"


@pytest.fixture
def own_pg() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, migrated, that the test may stop and start."""
    bindir = os.environ.get("DLQCTL_TEST_PG_BINDIR")
    server = EmbeddedPostgres(bindir=Path(bindir) if bindir else None).start()
    try:
        migrate(server.dsn)
        yield server
    finally:
        server.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _until(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def _metrics(base: str) -> dict[str, float]:
    """``name{labels}`` → value of every sample."""
    status, text = _get(f"{base}/metrics")
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def _metric(base: str, name: str) -> float:
    return _metrics(base).get(f'dlqctl_consumer_{name}{{consumer="{CONSUMER}"}}', -1.0)


class _Process:
    """``dlqctl consume`` in a child process, its stderr in a file."""

    def __init__(self, env: dict[str, str], args: list[str], stderr: Path) -> None:
        self.stderr_path = stderr
        self._stderr = stderr.open("w")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DLQCTL_", "PG"))}
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dlqctl", "consume", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            text=True,
        )

    def lines(self) -> list[str]:
        return self.stderr_path.read_text().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def alive(self) -> bool:
        assert self.proc.poll() is None, "\n".join(self.lines())
        return True

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode


@pytest.mark.db  # its own PostgreSQL: run again on the PostgreSQL 15 lane
def test_metrics_and_readiness_of_a_running_consume_over_http(
    broker: EmbeddedBroker, own_pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    events = [event(n, poison=n in (1, 3)) for n in range(5)]
    produce(bootstrap, topic, [(None, encode(e), None) for e in events])
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{own_pg.port}/postgres"
    env = {
        "DLQCTL_DATABASE_URL": url,
        "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DLQCTL_KAFKA_CONSUMER_CONFIG": json.dumps(TEST_CONSUMER_CONFIG),
        "DLQCTL_CONSUMER_COMMIT_INTERVAL": "0.2",
        "CONSUME_TEST_LOG": str(tmp_path / "handled.log"),
    }
    args = [
        "--consumer",
        CONSUMER,
        "--topic",
        topic,
        "--group-id",
        unique_name("g"),
        "--retries",
        "0",
        "--handler",
        "tests.faults.consume_handlers:record",
        "--metrics-port",
        "0",
        "--log-format",
        "json",
    ]
    process = _Process(env, args, tmp_path / "stderr.log")
    try:
        _until(lambda: process.alive() and "metrics_url" in process.stderr_path.read_text(), "URL")
        [announced] = [r for r in process.records() if "metrics_url" in r]
        base = announced["metrics_url"].removesuffix("/metrics")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base), base

        # Counters move as events are handled and stored.
        _until(lambda: _metric(base, "events_stored_total") == 2, "two stored entries")
        samples = _metrics(base)
        assert samples[f'dlqctl_consumer_events_handled_total{{consumer="{CONSUMER}"}}'] == 3
        assert samples[f'dlqctl_consumer_events_failed_total{{consumer="{CONSUMER}"}}'] == 2
        assert samples[f'dlqctl_consumer_events_consumed_total{{consumer="{CONSUMER}"}}'] == 5
        for name in (
            "refailures_linked_total",
            "store_retries_total",
            "partitions_paused",
            "store_failing",
        ):
            assert samples[f'dlqctl_consumer_{name}{{consumer="{CONSUMER}"}}'] == 0, name
        assert samples[f'dlqctl_consumer_partitions_assigned{{consumer="{CONSUMER}"}}'] == 1
        assert f'dlqctl_consumer_seconds_since_last_store{{consumer="{CONSUMER}"}}' in samples
        lag = f'dlqctl_consumer_lag{{consumer="{CONSUMER}",partition="0",topic="{topic}"}}'
        _until(lambda: _metrics(base).get(lag) == 0, "the lag series")
        assert _get(f"{base}/ready")[0] == 200
        assert _get(f"{base}/nothing-here")[0] == 404

        # PostgreSQL stops: /ready turns 503 (one line); a failing event cannot be stored,
        # so the partition is paused and the metrics say so.
        own_pg.stop_server()
        _until(lambda: _get(f"{base}/ready")[0] == 503, "/ready to turn 503")
        produce(bootstrap, topic, [(None, encode(event(5, poison=True)), None)])
        _until(lambda: _metric(base, "store_failing") == 1, "the store to fail")
        status, reason = _get(f"{base}/ready")
        assert status == 503
        assert reason.count("\n") == 1 and "cannot store failed events" in reason, reason
        assert _metric(base, "partitions_paused") == 1
        assert _metric(base, "events_waiting_to_be_stored") == 1
        _until(lambda: _metric(base, "store_retries_total") >= 2, "a second store attempt")

        # Back: 200 again, the waiting event is stored.
        own_pg.start_server()
        _until(lambda: _get(f"{base}/ready")[0] == 200, "/ready to turn 200 again")
        _until(lambda: _metric(base, "events_stored_total") == 3, "the third entry")
        assert _metric(base, "store_failing") == 0
        assert _metric(base, "partitions_paused") == 0
    finally:
        code = process.stop()
    assert code == 0, "\n".join(process.lines())

    text = process.stderr_path.read_text()
    assert PASSWORD not in text
    records = process.records()  # every line is one JSON object
    assert all({"ts", "level", "msg"} <= set(r) for r in records)
    assert all(r["ts"].endswith("Z") for r in records)
    stored = [r for r in records if r.get("outcome") == "stored"]
    assert sorted(r["offset"] for r in stored) == [1, 3, 5]
    assert all(r["consumer"] == CONSUMER and r["topic"] == topic for r in stored)
    assert any(r["level"] == "warning" and "cannot store" in r["msg"] for r in records)
    assert records[-1]["msg"].startswith(f"consumer {CONSUMER}: stopped")
