"""The harness itself: the servers are real and reachable over TCP, the helpers read them right."""

from __future__ import annotations

from typing import Any

from dlqctl.embedded.tansu import EmbeddedBroker
from tests.consumer_helpers import end_offsets
from tests.factories import insert_many
from tests.kafka_helpers import create_topic, produce, read_topic


def test_each_test_gets_a_migrated_database(conn: Any) -> None:
    assert conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"] == 0
    insert_many(conn, 3, consumer="billing")
    rows = conn.execute("SELECT consumer FROM dlq").fetchall()
    assert [r["consumer"] for r in rows] == ["billing"] * 3


def test_broker_round_trip_keeps_keys_values_and_headers(broker: EmbeddedBroker) -> None:
    topic = create_topic(broker.bootstrap_servers, partitions=3)
    sent = [
        (f"k{i}".encode(), f"v{i}".encode(), [("h", b"\x00\xff"), ("h", None)]) for i in range(5)
    ]
    produce(broker.bootstrap_servers, topic, sent)
    received = read_topic(broker.bootstrap_servers, topic, expected=5)
    assert sorted((m.key, m.value) for m in received) == sorted((k, v) for k, v, _ in sent)
    assert all(m.headers == [("h", b"\x00\xff"), ("h", None)] for m in received)


def test_end_offsets_helper_matches_the_topic(broker: EmbeddedBroker) -> None:
    topic = create_topic(broker.bootstrap_servers, partitions=2)
    produce(broker.bootstrap_servers, topic, [(None, b"{}", None)] * 3, partition=1)
    assert end_offsets(broker.bootstrap_servers, topic, 3) == {1: 3}
