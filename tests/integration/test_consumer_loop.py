"""The whole loop with the real consumer, replay, database and broker: consume → fail →
replay → (fail again). Tombstones come back as tombstones; a replayed event that fails again
links back to its entry instead of becoming a new one."""

from __future__ import annotations

from typing import Any

from dlqctl.core.filters import EntryFilter
from dlqctl.core.replay import ReplayOptions
from dlqctl.embedded.tansu import EmbeddedBroker
from dlqctl.usecases.replay import replay
from tests.consumer_helpers import Recorder, RunningConsumer, consumer_settings, make_consumer
from tests.kafka_helpers import create_topic, produce, read_topic


def test_a_tombstone_is_stored_as_one_and_replays_as_a_null_value(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    source = create_topic(bootstrap)
    produce(bootstrap, source, [(b"order-7", None, [("trace", b"t-7")])])
    settings = consumer_settings(db_url, bootstrap)
    recorder = Recorder()
    with RunningConsumer(make_consumer(recorder, settings, source)) as running:
        running.wait_for(lambda: running.consumer.stats.stored == 1, what="the tombstone stored")
    assert recorder.calls == []  # a null value is not JSON: the handler never sees it
    [row] = conn.execute("SELECT * FROM dlq").fetchall()
    assert row["event_payload"] == {"_dlqctl_tombstone": True}
    assert row["event_raw"] is None
    assert row["event_key"] == b"order-7"
    assert row["error_message"].startswith("UndecodableEvent: the message has no value")

    target = create_topic(bootstrap)
    report = replay(settings, EntryFilter(), ReplayOptions(topic=target))
    assert report.result.succeeded == 1, report
    [message] = read_topic(bootstrap, target, expected=1)
    assert message.value is None
    assert message.key == b"order-7"
    assert ("trace", b"t-7") in message.headers
