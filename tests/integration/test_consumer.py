"""The embedded consumer on the real broker and database: poison events land in the DLQ once
each, nothing is committed before it is handled or stored, restarts re-read nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from typing import Any

import pytest

from dlqctl.embedded.tansu import EmbeddedBroker
from dlqctl.kafka.consumer import PermanentError
from tests.consumer_helpers import (
    RunningConsumer,
    committed_offsets,
    encode,
    end_offsets,
    event,
    make_consumer,
)
from tests.factories import make_settings
from tests.fakes import NS, Recorder
from tests.kafka_helpers import create_topic, produce, read_topic, unique_name


def _dlq(conn: Any) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM dlq ORDER BY source_partition, source_offset").fetchall()


def _count(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"])


def test_poison_events_land_in_the_dlq_once_each_with_provenance(
    broker: EmbeddedBroker, conn: Any, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap, partitions=2)
    events = [event(n, poison=n % 7 == 3) for n in range(40)]
    events[10]["event_id"] = "order-10"  # not a UUID: hashed into the namespace
    events[10]["poison"] = True
    messages = [
        (f"key-{n % 5}".encode(), encode(e), [("trace", f"t{n}".encode()), ("bin", b"\xff")])
        for n, e in enumerate(events)
    ]
    produce(bootstrap, topic, messages)
    on_kafka = {json.loads(m.value or b"")["n"]: m for m in read_topic(bootstrap, topic, 40)}
    poison = [e for e in events if e["poison"]]
    healthy = [e["n"] for e in events if not e["poison"]]

    recorder = Recorder()
    group = unique_name("g")
    settings = make_settings(db_url, bootstrap)
    caplog.set_level(logging.INFO, logger="dlqctl.consumer")
    with RunningConsumer(make_consumer(recorder, settings, topic, group=group)) as running:
        running.wait_for(
            lambda: _count(conn) == len(poison) and len(recorder.handled()) == len(healthy),
            what="every event handled or stored",
        )
        ends = end_offsets(bootstrap, topic, 40)
        running.wait_for(
            lambda: committed_offsets(bootstrap, group, topic, 2) == ends,
            what="the commits to reach the end",
        )
    stats = running.result
    assert stats is not None

    assert sorted(recorder.handled()) == healthy  # each once
    rows = _dlq(conn)
    assert len(rows) == len(poison)
    by_n = {r["event_payload"]["n"]: r for r in rows}
    for e in poison:
        row, msg = by_n[e["n"]], on_kafka[e["n"]]
        expected_id = uuid.uuid5(NS, "order-10") if e["n"] == 10 else uuid.UUID(e["event_id"])
        assert row["event_id"] == expected_id
        assert row["consumer"] == "orders-projector"
        assert row["event_payload"] == e
        assert row["error_message"] == f"ValueError: cannot project event {e['n']}"
        assert row["error_fingerprint"] == "ValueError: cannot project event <n>"
        assert (row["status"], row["retry_count"]) == ("pending", 0)
        assert (row["source_topic"], row["source_partition"], row["source_offset"]) == (
            topic,
            msg.partition,
            msg.offset,
        )
        assert row["event_key"] == msg.key
        assert row["event_raw"] == msg.value
        assert row["event_headers"] == [
            ["trace", base64.b64encode(f"t{e['n']}".encode()).decode()],
            ["bin", "/w=="],
        ]
        assert recorder.count(e["n"]) == 3  # the first call and one retry per backoff wait
    assert (stats.consumed, stats.handled, stats.stored) == (40, len(healthy), len(poison))
    assert stats.retries == 2 * len(poison)

    failure_lines = [r for r in caplog.records if "failed after 3 attempts" in r.getMessage()]
    assert len(failure_lines) == len(poison)
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in failure_lines)


def test_undecodable_and_jsonb_unsafe_bytes_are_stored_exactly(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    bad = [
        b"\xff\xfe\x00\x01 binary",
        b"{not json",
        b'{"amount": NaN}',
        b'{"note": "nul \\u0000 byte"}',
        b'{"s": "lone \\udc00 surrogate"}',
        None,  # a tombstone
    ]
    good = encode(event(99))
    produce(bootstrap, topic, [(b"k", value, None) for value in [*bad, good]])

    recorder = Recorder()
    settings = make_settings(db_url, bootstrap)
    with RunningConsumer(make_consumer(recorder, settings, topic)) as running:
        running.wait_for(lambda: _count(conn) == len(bad) and recorder.handled() == [99])

    assert len(recorder.calls) == 1  # the handler never saw the undecodable ones
    rows = _dlq(conn)
    assert [r["source_offset"] for r in rows] == list(range(len(bad)))
    for offset, (row, raw) in enumerate(zip(rows, bad, strict=True)):
        exact = raw if raw is not None else b""
        assert row["event_raw"] == raw  # NULL for the tombstone
        if raw is None:
            assert row["event_payload"] == {"_dlqctl_tombstone": True}
        else:
            assert row["event_payload"] == {"_dlqctl_raw_base64": base64.b64encode(raw).decode()}
        digest = hashlib.sha256(exact).hexdigest()
        assert row["event_id"] == uuid.uuid5(NS, f"{topic}/0/{offset}/{digest}")
        assert row["event_key"] == b"k"
    errors = [r["error_message"].split(":")[0] for r in rows]
    assert errors == [
        "UnicodeDecodeError",
        "JSONDecodeError",
        "UndecodableEvent",
        "UndecodableEvent",
        "UndecodableEvent",
        "UndecodableEvent",
    ]


def test_a_restart_rereads_nothing_and_another_group_stores_no_duplicates(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap, partitions=2)
    events = [event(n, poison=n % 4 == 0) for n in range(24)]
    produce(bootstrap, topic, [(str(n).encode(), encode(e), None) for n, e in enumerate(events)])
    n_poison = sum(1 for e in events if e["poison"])
    group = unique_name("g")
    settings = make_settings(db_url, bootstrap, consumer_retry_backoff=())

    first = Recorder()
    with RunningConsumer(make_consumer(first, settings, topic, group=group)) as running:
        running.wait_for(lambda: _count(conn) == n_poison and len(first.handled()) == 18)
    before = _dlq(conn)

    # The same group again: everything was committed on the way out, nothing is re-read.
    second = Recorder()
    with RunningConsumer(make_consumer(second, settings, topic, group=group)) as running:
        running.wait_assigned()
        produce(bootstrap, topic, [(b"x", encode(event(100)), None)])
        running.wait_for(lambda: second.handled() == [100], what="the one new event")
    assert len(second.calls) == 1

    # A new group of the same consumer reads everything again: the poison events fail again
    # and the duplicate guard keeps their entries single.
    third = Recorder()
    with RunningConsumer(make_consumer(third, settings, topic)) as running:
        running.wait_for(lambda: len(third.calls) == len(events) + 1)
        running.wait_for(lambda: running.consumer.stats.already_stored == n_poison)
    assert running.result is not None and running.result.stored == 0
    assert _dlq(conn) == before


def test_a_permanent_error_skips_the_retries_and_stats_are_logged(
    broker: EmbeddedBroker, conn: Any, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    produce(bootstrap, topic, [(None, encode(event(n)), None) for n in range(3)])
    calls: list[int] = []

    def handler(value: dict[str, Any]) -> None:
        calls.append(value["n"])
        if value["n"] == 1:
            raise PermanentError("unknown currency 'XXX'")

    caplog.set_level(logging.INFO, logger="dlqctl.consumer")
    settings = make_settings(db_url, bootstrap, consumer_retry_backoff=(0.0, 0.0, 0.0))
    consumer = make_consumer(handler, settings, topic, stats_interval=0.3)
    with RunningConsumer(consumer) as running:
        running.wait_for(lambda: _count(conn) == 1 and len(calls) == 3)
        running.wait_for(lambda: any("consumed 3" in r.getMessage() for r in caplog.records))
    assert calls == [0, 1, 2]
    stats_line = next(r.getMessage() for r in caplog.records if "consumed 3" in r.getMessage())
    assert "handled 2, stored in the DLQ 1" in stats_line
    [row] = _dlq(conn)
    assert row["error_message"] == "PermanentError: unknown currency 'XXX'"
    assert row["error_fingerprint"] == "PermanentError: unknown currency <str>"


def test_a_second_member_joining_mid_stream_loses_and_doubles_nothing(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap, partitions=3)
    events = [event(n, poison=n % 10 == 0) for n in range(300)]
    poison = {e["n"] for e in events if e["poison"]}
    healthy = {e["n"] for e in events if not e["poison"]}
    group = unique_name("g")
    settings = make_settings(db_url, bootstrap, consumer_retry_backoff=())
    a, b = Recorder(sleep=0.005), Recorder(sleep=0.005)

    def produce_slowly() -> None:
        # Over ~6 s, so the second member's join (~4 s on tansu) happens mid-stream.
        for n in range(0, 300, 10):
            chunk = [(str(e["n"]).encode(), encode(e), None) for e in events[n : n + 10]]
            produce(bootstrap, topic, chunk)
            time.sleep(0.2)

    with RunningConsumer(make_consumer(a, settings, topic, group=group)) as first:
        first.wait_assigned()
        producer = threading.Thread(target=produce_slowly)
        producer.start()
        try:
            first.wait_for(lambda: len(a.calls) >= 20, what="the first member to get going")
            with RunningConsumer(make_consumer(b, settings, topic, group=group)) as second:
                first.wait_for(
                    lambda: (
                        set(a.handled()) | set(b.handled()) == healthy
                        and _count(conn) == len(poison)
                    ),
                    timeout=90,
                    what="every event handled or stored",
                )
                ends = end_offsets(bootstrap, topic, 300)
                second.wait_for(
                    lambda: committed_offsets(bootstrap, group, topic, 3) == ends,
                    what="the commits to reach the end",
                )
        finally:
            producer.join()
    assert b.calls, "the second member never got a partition"
    assert first.consumer.stats.assignments >= 2  # it went through a rebalance
    rows = _dlq(conn)
    assert sorted(r["event_payload"]["n"] for r in rows) == sorted(poison)
