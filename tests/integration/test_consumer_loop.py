"""The whole loop with the real consumer, replay, database and broker: consume → fail →
replay → (fail again). Tombstones come back as tombstones; a replayed event that fails again
links back to its entry instead of becoming a new one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dlqctl.core.cleanup import DiscardRequest, PurgeRequest
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import parse_id
from dlqctl.core.models import Status
from dlqctl.core.replay import ReplayRequest
from dlqctl.embedded.tansu import EmbeddedBroker
from dlqctl.usecases.cleanup import discard, purge
from dlqctl.usecases.replay import replay
from tests.consumer_helpers import (
    RunningConsumer,
    encode,
    event,
    make_consumer,
)
from tests.factories import make_settings
from tests.fakes import Recorder
from tests.kafka_helpers import create_topic, produce, read_topic, unique_name

CONSUMER = "orders-projector"  # make_consumer's default


def test_a_tombstone_is_stored_as_one_and_replays_as_a_null_value(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    source = create_topic(bootstrap)
    produce(bootstrap, source, [(b"order-7", None, [("trace", b"t-7")])])
    settings = make_settings(db_url, bootstrap)
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
    report = replay(settings, ReplayRequest(EntryFilter(), topic=target))
    assert report.result.succeeded == 1, report
    [message] = read_topic(bootstrap, target, expected=1)
    assert message.value is None
    assert message.key == b"order-7"
    assert ("trace", b"t-7") in message.headers


def _always_fails(value: Any) -> None:
    raise ValueError(f"cannot project event {value['n']}")


def _entries(conn: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = conn.execute(
        "SELECT * FROM dlq ORDER BY failed_at, dlq_id"
    ).fetchall()
    return rows


def _attempts(conn: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = conn.execute("SELECT * FROM dlq_attempts ORDER BY id").fetchall()
    return rows


def test_a_replayed_event_that_fails_again_links_back_to_its_entry(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    settings = make_settings(db_url, bootstrap, consumer_retry_backoff=())
    produce(bootstrap, topic, [(b"order-1", encode(event(1)), [("trace", b"t-1")])])
    group = unique_name("g")
    with RunningConsumer(make_consumer(_always_fails, settings, topic, group=group)) as running:
        running.wait_for(lambda: running.consumer.stats.stored == 1, what="the entry stored")
        [before] = _entries(conn)
        # Replay (to the topic it came from) while the consumer runs; the bug is not fixed.
        report = replay(settings, ReplayRequest(EntryFilter()))
        assert report.result.succeeded == 1, report
        running.wait_for(lambda: running.consumer.stats.linked == 1, what="the link-back")
    stats = running.result
    assert stats is not None
    assert (stats.stored, stats.linked, stats.already_stored) == (1, 1, 0)

    [after] = _entries(conn)  # no second entry
    assert after["dlq_id"] == before["dlq_id"]
    assert (after["status"], after["retry_count"]) == ("pending", 1)
    assert after["status_reason"] == "failed again after replay 1"
    assert after["error_message"] == "ValueError: cannot project event 1"
    for column in ("failed_at", "event_payload", "event_raw", "event_headers", "source_offset"):
        assert after[column] == before[column], column
    [attempt] = _attempts(conn)
    assert (attempt["dlq_id"], attempt["attempt"]) == (after["dlq_id"], 1)
    assert (attempt["source_topic"], attempt["source_offset"]) == (topic, 1)
    assert attempt["error_message"] == "ValueError: cannot project event 1"

    # The same replayed message delivered again (a new group re-reads the topic): the
    # duplicate guard keeps the entry single and the attempt is recorded once.
    with RunningConsumer(make_consumer(_always_fails, settings, topic)) as again:
        again.wait_for(lambda: again.consumer.stats.already_stored == 2, what="both messages")
    assert again.result is not None
    assert (again.result.stored, again.result.linked) == (0, 0)
    assert len(_entries(conn)) == 1
    assert len(_attempts(conn)) == 1
    assert _entries(conn)[0]["status_changed_at"] == after["status_changed_at"]


def test_a_discarded_entry_stays_discarded_when_a_replayed_copy_fails_again(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic, later = create_topic(bootstrap), create_topic(bootstrap)
    settings = make_settings(db_url, bootstrap, consumer_retry_backoff=())
    group = unique_name("g")
    produce(bootstrap, topic, [(b"order-1", encode(event(1)), None)])
    with RunningConsumer(make_consumer(_always_fails, settings, topic, group=group)) as running:
        running.wait_for(lambda: running.consumer.stats.stored == 1, what="the entry stored")
    # Replayed twice: to its own topic, then (-s replayed) to a topic read later.
    assert replay(settings, ReplayRequest(EntryFilter())).result.succeeded == 1
    again = EntryFilter(statuses=(Status.REPLAYED,))
    assert replay(settings, ReplayRequest(again, topic=later)).result.succeeded == 1

    # The first copy fails again: the entry is pending; the operator discards it.
    with RunningConsumer(make_consumer(_always_fails, settings, topic, group=group)) as running:
        running.wait_for(lambda: running.consumer.stats.linked == 1, what="the first copy")
    [entry] = _entries(conn)
    assert (entry["status"], entry["status_reason"]) == ("pending", "failed again after replay 2")
    request = DiscardRequest(EntryFilter(ids=(parse_id(str(entry["dlq_id"])),)), reason="junk")
    assert discard(settings, request).write.succeeded == 1
    [discarded] = _entries(conn)

    # The second copy fails too: its attempt is recorded, the entry stays as discarded.
    with RunningConsumer(make_consumer(_always_fails, settings, later)) as running:
        running.wait_for(lambda: running.consumer.stats.linked == 1, what="the second copy")
    [after] = _entries(conn)
    assert after == discarded
    assert (after["status"], after["status_reason"]) == ("discarded", "junk")
    assert [(a["attempt"], a["source_topic"]) for a in _attempts(conn)] == [
        (2, topic),
        (2, later),
    ]


def test_a_purged_entry_or_another_consumers_entry_gives_a_new_entry(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic, billing_topic = create_topic(bootstrap), create_topic(bootstrap)
    settings = make_settings(db_url, bootstrap, consumer_retry_backoff=())
    group = unique_name("g")
    produce(bootstrap, topic, [(b"order-1", encode(event(1)), None)])
    with RunningConsumer(make_consumer(_always_fails, settings, topic, group=group)) as running:
        running.wait_for(lambda: running.consumer.stats.stored == 1, what="the entry stored")
    [original] = _entries(conn)
    # Replayed to its topic and (-s replayed) to a topic that another consumer reads.
    assert replay(settings, ReplayRequest(EntryFilter())).result.succeeded == 1
    again = EntryFilter(statuses=(Status.REPLAYED,))
    assert replay(settings, ReplayRequest(again, topic=billing_topic)).result.succeeded == 1

    # Another consumer fails on it: its dlq-consumer header names orders-projector.
    with RunningConsumer(
        make_consumer(_always_fails, settings, billing_topic, consumer="billing")
    ) as running:
        running.wait_for(lambda: running.consumer.stats.stored == 1, what="billing's entry")
    assert running.result is not None and running.result.linked == 0

    # Purged before the replayed copy comes back and fails: a new entry, as before.
    purged = purge(settings, PurgeRequest(EntryFilter(), timedelta(0), "0s"))
    assert purged.write.succeeded == 1
    with RunningConsumer(make_consumer(_always_fails, settings, topic, group=group)) as running:
        running.wait_for(lambda: running.consumer.stats.stored == 1, what="the new entry")
    assert running.result is not None and running.result.linked == 0

    entries = _entries(conn)
    assert [(e["consumer"], e["status"], e["retry_count"]) for e in entries] == [
        ("billing", "pending", 0),
        (CONSUMER, "pending", 0),
    ]
    assert original["dlq_id"] not in {e["dlq_id"] for e in entries}
    assert all(e["event_id"] == original["event_id"] for e in entries)
    assert _attempts(conn) == []
