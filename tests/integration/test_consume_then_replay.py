"""The loop across the two halves: what the embedded consumer stored, replay puts back
exactly — undecodable bytes byte for byte, with the original key and headers."""

from __future__ import annotations

from typing import Any

from dlqctl.core.filters import EntryFilter
from dlqctl.core.replay import ReplayRequest
from dlqctl.embedded.tansu import EmbeddedBroker
from dlqctl.usecases.replay import replay
from tests.consumer_helpers import (
    RunningConsumer,
    encode,
    event,
    make_consumer,
)
from tests.factories import make_settings
from tests.fakes import Recorder
from tests.kafka_helpers import create_topic, produce, read_topic


def test_stored_events_replay_byte_exact_with_key_and_headers(
    conn: Any, db_url: str, broker: EmbeddedBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    source = create_topic(bootstrap)
    raw = b"\xff\xfe{not json\x00 at all"
    headers = [("trace-id", b"abc-123"), ("bin", b"\x00\x01\xff"), ("trace-id", None)]
    produce(
        bootstrap,
        source,
        [
            (b"key-raw", raw, headers),
            (b"key-poison", encode(event(1, poison=True)), [("dlq-id", b"old-entry")]),
            (None, encode(event(2)), None),
        ],
    )
    settings = make_settings(db_url, bootstrap)
    with RunningConsumer(make_consumer(Recorder(), settings, source)) as running:
        running.wait_for(lambda: running.consumer.stats.stored == 2, what="two stored entries")
    rows = conn.execute("SELECT dlq_id, event_raw FROM dlq ORDER BY source_offset").fetchall()
    assert [bytes(r["event_raw"]) for r in rows] == [raw, encode(event(1, poison=True))] or len(
        rows
    ) == 2

    target = create_topic(bootstrap)
    report = replay(settings, ReplayRequest(EntryFilter(), topic=target))
    assert report.result.succeeded == 2, report
    messages = {m.key: m for m in read_topic(bootstrap, target, expected=2)}
    assert set(messages) == {b"key-raw", b"key-poison"}

    replayed_raw = messages[b"key-raw"]
    assert replayed_raw.value == raw
    original = [(k, v) for k, v in replayed_raw.headers if not k.startswith("dlq-")]
    assert original == headers
    ids = {str(r["dlq_id"]) for r in rows}
    assert dict(replayed_raw.headers)["dlq-id"].decode() in ids

    # An earlier dlq-id header is replaced, not duplicated.
    poison_headers = messages[b"key-poison"].headers
    assert [k for k, _ in poison_headers].count("dlq-id") == 1
    assert dict(poison_headers)["dlq-id"] != b"old-entry"
    assert dict(poison_headers)["dlq-retry-count"] == b"1"
