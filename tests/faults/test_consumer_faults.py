"""The embedded consumer under faults: the database stops (also before start-up, and for
longer than max.poll.interval.ms), and the process gets SIGTERM mid-stream."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dlqctl.embedded.postgres import EmbeddedPostgres
from dlqctl.embedded.tansu import EmbeddedBroker
from tests.cli_helpers import CliEnv, start_dlqctl
from tests.consumer_helpers import (
    RunningConsumer,
    committed_offsets,
    encode,
    event,
    make_consumer,
)
from tests.factories import TEST_CONSUMER_CONFIG, make_settings
from tests.fakes import Recorder
from tests.kafka_helpers import (
    create_topic,
    produce,
    read_topic,
    unique_name,
)

ROOT = Path(__file__).resolve().parents[2]


def _dlq_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM dlq").fetchone()
        assert row is not None
        return int(row[0])


def _dlq_offsets(dsn: str) -> list[tuple[int, int]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT source_partition, source_offset FROM dlq ORDER BY 1, 2"
        ).fetchall()
        return [(r[0], r[1]) for r in rows]


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "cannot store" in r.getMessage()]


@pytest.mark.db  # its own PostgreSQL: run again on the PostgreSQL 15 lane
def test_database_stopped_while_poison_events_arrive_longer_than_max_poll_interval(
    broker: EmbeddedBroker, own_pg: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    group = unique_name("g")
    caplog.set_level(logging.INFO, logger="dlqctl.consumer")
    # max.poll.interval.ms as small as librdkafka allows (>= session.timeout.ms): the outage
    # below lasts longer, so only polling while paused keeps the consumer in its group.
    settings = make_settings(
        own_pg.dsn,
        bootstrap,
        consumer_retry_backoff=(),
        kafka_consumer_config={"max.poll.interval.ms": "6000"},
    )
    recorder = Recorder()
    with RunningConsumer(make_consumer(recorder, settings, topic, group=group)) as running:
        running.wait_assigned()
        produce(bootstrap, topic, [(None, encode(event(n)), None) for n in range(5)])
        running.wait_for(lambda: len(recorder.handled()) == 5)
        running.wait_for(lambda: committed_offsets(bootstrap, group, topic, 1) == {0: 5})

        own_pg.stop_server()
        outage_started = time.monotonic()
        batch = [event(n, poison=n in (5, 7)) for n in range(5, 10)]
        produce(bootstrap, topic, [(None, encode(e), None) for e in batch])
        running.wait_for(lambda: len(_outage_lines(caplog)) >= 3, what="the write retries")
        # Produced during the outage: not fetched while the partition is paused.
        produce(bootstrap, topic, [(None, encode(event(n)), None) for n in range(10, 13)])
        while time.monotonic() - outage_started < 9:  # > max.poll.interval.ms
            assert committed_offsets(bootstrap, group, topic, 1) == {0: 5}
            time.sleep(0.5)
        assert running.consumer.stats.assignments == 1  # never evicted from the group
        assert max(recorder.handled()) < 10  # paused: nothing new was fetched

        own_pg.start_server()
        running.wait_for(lambda: _dlq_count(own_pg.dsn) == 2, what="the poison events stored")
        running.wait_for(lambda: sorted(recorder.handled()) == [0, 1, 2, 3, 4, 6, 8, 9, 10, 11, 12])
        running.wait_for(lambda: committed_offsets(bootstrap, group, topic, 1) == {0: 13})
    assert running.consumer.stats.assignments == 1
    assert _dlq_offsets(own_pg.dsn) == [(0, 5), (0, 7)]
    lines = _outage_lines(caplog)
    attempts = [int(r.getMessage().split("(attempt ")[1].split(")")[0]) for r in lines]
    assert attempts == list(range(1, len(attempts) + 1))  # one line per attempt
    assert all(r.exc_info is None for r in lines)
    assert any("the database is back" in r.getMessage() for r in caplog.records)
    delays = [float(r.getMessage().rsplit("retrying in ", 1)[1].rstrip("s")) for r in lines]
    assert max(delays) <= 5.0


@pytest.mark.db  # its own PostgreSQL: run again on the PostgreSQL 15 lane
def test_database_down_at_start_up(
    broker: EmbeddedBroker, own_pg: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    group = unique_name("g")
    caplog.set_level(logging.INFO, logger="dlqctl.consumer")
    own_pg.stop_server()
    events = [event(n, poison=n == 2) for n in range(5)]
    produce(bootstrap, topic, [(None, encode(e), None) for e in events])
    settings = make_settings(own_pg.dsn, bootstrap, consumer_retry_backoff=())
    recorder = Recorder()
    with RunningConsumer(make_consumer(recorder, settings, topic, group=group)) as running:
        running.wait_for(lambda: len(_outage_lines(caplog)) >= 2, what="the write retries")
        time.sleep(1)
        assert committed_offsets(bootstrap, group, topic, 1) == {0: 2}
        own_pg.start_server()
        running.wait_for(lambda: _dlq_count(own_pg.dsn) == 1)
        running.wait_for(lambda: committed_offsets(bootstrap, group, topic, 1) == {0: 5})
    assert sorted(recorder.handled()) == [0, 1, 3, 4]
    assert any("unreachable" in r.getMessage() for r in caplog.records)


def _consume_process(
    cli_env: CliEnv, bootstrap: str, topic: str, group: str, log: Path
) -> subprocess.Popen[str]:
    env = cli_env(
        bootstrap,
        DLQCTL_KAFKA_CONSUMER_CONFIG=json.dumps(TEST_CONSUMER_CONFIG),
        DLQCTL_CONSUMER_COMMIT_INTERVAL="0.2",
        CONSUME_TEST_LOG=str(log),
    )
    return start_dlqctl(
        "consume",
        "--consumer",
        "orders-projector",
        "--topic",
        topic,
        "--group-id",
        group,
        "--retries",
        "0",
        "--handler",
        "tests.faults.consume_handlers:record",
        env=env,
        cwd=ROOT,
    )


def _logged(log: Path) -> list[int]:
    if not log.exists():
        return []
    return [int(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_stream_stops_cleanly_and_loses_nothing(
    broker: EmbeddedBroker,
    db_url: str,
    cli_env: CliEnv,
    conn: Any,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap, partitions=2)
    group = unique_name("g")
    events = [event(n, poison=n % 9 == 4) for n in range(400)]
    produce(bootstrap, topic, [(str(n).encode(), encode(e), None) for n, e in enumerate(events)])
    poison = {e["n"] for e in events if e["poison"]}
    log = tmp_path / "handled.log"

    proc = _consume_process(cli_env, bootstrap, topic, group, log)
    try:
        deadline = time.monotonic() + 60
        while len(_logged(log)) < 60:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the consumer did not get going"
            time.sleep(0.05)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"{sig.name} received" in err and "stopped: consumed" in err
    assert "Traceback" not in err

    first_run = _logged(log)
    assert len(first_run) < 400, "stopped too late to test anything"
    assert len(first_run) == len(set(first_run))
    stored = {r["event_payload"]["n"] for r in conn.execute("SELECT event_payload FROM dlq")}
    assert stored <= poison
    # Whatever the commit covers was handled (and logged) or stored before the exit.
    committed = committed_offsets(bootstrap, group, topic, 2)
    finished = set(first_run) | stored
    messages = read_topic(bootstrap, topic, 400)
    by_position = {(m.partition, m.offset): json.loads(m.value or b"")["n"] for m in messages}
    for (partition, offset), n in by_position.items():
        if offset < committed[partition]:
            assert n in finished, f"event {n} committed but neither handled nor stored"

    # A second run picks up exactly where the first stopped: every event once, in all.
    recorder = Recorder()
    settings = make_settings(db_url, bootstrap, consumer_retry_backoff=())
    with RunningConsumer(make_consumer(recorder, settings, topic, group=group)) as running:
        running.wait_for(
            lambda: set(first_run) | set(recorder.handled()) == set(range(400)) - poison,
            what="the rest of the events",
        )
        running.wait_for(
            lambda: conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"] == len(poison)
        )
    assert set(first_run).isdisjoint(recorder.handled())
    assert len(recorder.handled()) == len(set(recorder.handled()))


def test_a_slow_handler_does_not_get_the_consumer_evicted(
    broker: EmbeddedBroker, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    group = unique_name("g")
    produce(bootstrap, topic, [(None, encode(event(n)), None) for n in range(8)])
    settings = make_settings(
        db_url, bootstrap, kafka_consumer_config={"max.poll.interval.ms": "6000"}
    )
    # One batch of 8 events at 1 s each: 8 s between two fetches, more than the 6 s allowed
    # between polls; the consumer polls (paused) in between to stay in the group.
    recorder = Recorder(sleep=1.0)
    with RunningConsumer(make_consumer(recorder, settings, topic, group=group)) as running:
        running.wait_for(lambda: len(recorder.handled()) == 8, timeout=90)
        running.wait_for(lambda: committed_offsets(bootstrap, group, topic, 1) == {0: 8})
    assert recorder.handled() == list(range(8))  # each once: never re-read after an eviction
    assert running.consumer.stats.assignments == 1
