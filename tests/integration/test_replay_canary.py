"""Canary replays on the real PostgreSQL and tansu, with the real embedded consumer: a still
broken handler stops the run after the canary, a fixed one lets the rest follow; a group
that never gets past the canary, and a re-failure another writer stored, stop it too."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from dlqctl.core.canary import Canary, CanaryOutcome
from dlqctl.core.filters import EntryFilter
from dlqctl.core.replay import ReplayRequest
from dlqctl.core.runs import SilentListener
from dlqctl.usecases.replay import replay
from tests.consumer_helpers import RunningConsumer, make_consumer
from tests.factories import audit_rows, entry, insert_entries, make_settings
from tests.fakes import Recorder
from tests.kafka_helpers import create_topic, unique_name
from tests.replay_helpers import dlq_ids_on, rows_by_id

CONSUMER = "orders"
# Generous: the test ends as soon as the group is past the canary.
GROUP_WAIT = timedelta(seconds=90)


def _entries(conn: Any, topic: str, count: int, *, poison: bool) -> list[uuid.UUID]:
    """Entries as the embedded consumer stores them: recorded bytes and source topic."""
    rows = []
    for n in range(count):
        event_id = uuid.uuid4()
        value = {"event_id": str(event_id), "n": n, "poison": poison}
        rows.append(
            entry(
                consumer=CONSUMER,
                event_id=event_id,
                event_payload=value,
                event_raw=json.dumps(value).encode(),
                source_topic=topic,
                source_partition=0,
                source_offset=n,
            )
        )
    return insert_entries(conn, rows)


class Notes(SilentListener):
    """Records the run's progress lines; ``on_wait`` runs when the canary wait begins."""

    def __init__(self, on_wait: Any = None) -> None:
        self.lines: list[str] = []
        self.on_wait = on_wait

    def note(self, message: str) -> None:
        self.lines.append(message)
        if self.on_wait is not None and "entries sent" in message:
            self.on_wait()


def test_a_canary_into_a_still_broken_handler_stops_after_n(
    conn: Any, db_url: str, broker: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap, partitions=2)
    ids = _entries(conn, topic, 8, poison=True)  # the handler fails every one of them
    settings = make_settings(db_url, bootstrap)
    group = unique_name("g")
    notes = Notes()
    consumer = make_consumer(Recorder(), settings, topic, consumer=CONSUMER, group=group)
    with RunningConsumer(consumer) as running:
        running.wait_assigned()
        report = replay(
            settings,
            ReplayRequest(EntryFilter(), batch_size=2, canary=Canary(3, group, GROUP_WAIT)),
            listener=notes,
        )

    canary_ids = ids[:3]  # the first N of the selection, oldest first
    assert report.exit_code == 1
    assert report.canary is not None
    assert report.canary.outcome is CanaryOutcome.REFAILED
    assert list(report.canary.refailed) == canary_ids
    summary = report.result.to_json()
    assert summary["canary"] == {
        "size": 3,
        "refailed": [str(i) for i in canary_ids],
        "outcome": "refailed",
    }
    assert (summary["matched"], summary["succeeded"], summary["skipped"]) == (8, 3, 5)
    assert report.result.outcome == "failed"
    assert report.error is not None and "3 of 3 replayed entries failed again" in report.error
    assert sorted(dlq_ids_on(bootstrap, topic, 3)) == sorted(canary_ids)  # exactly N sent
    rows = rows_by_id(conn)
    for dlq_id in canary_ids:  # linked back by the consumer: pending again, one replay
        assert (rows[dlq_id]["status"], rows[dlq_id]["retry_count"]) == ("pending", 1)
    for dlq_id in ids[3:]:
        assert (rows[dlq_id]["status"], rows[dlq_id]["retry_count"]) == ("pending", 0)
    assert conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"] == 8  # no new entry
    assert any(f"consumer group {group!r}" in line for line in notes.lines), notes.lines
    (audit,) = audit_rows(conn)
    assert audit["outcome"] == "failed"
    assert audit["details"]["canary"] == summary["canary"]
    assert audit["details"]["options"]["canary"] == {"size": 3, "group": group, "wait": "90s"}


def test_a_canary_into_a_working_handler_lets_the_rest_follow(
    conn: Any, db_url: str, broker: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap, partitions=2)
    ids = _entries(conn, topic, 8, poison=False)
    settings = make_settings(db_url, bootstrap)
    group = unique_name("g")
    recorder = Recorder()
    with RunningConsumer(make_consumer(recorder, settings, topic, consumer=CONSUMER, group=group)):
        report = replay(
            settings,
            ReplayRequest(EntryFilter(), batch_size=2, canary=Canary(3, group, GROUP_WAIT)),
        )

    assert report.exit_code == 0, report.error
    assert report.canary is not None and report.canary.outcome is CanaryOutcome.PASSED
    assert report.result.to_json()["canary"] == {"size": 3, "refailed": [], "outcome": "passed"}
    assert (report.result.succeeded, report.result.skipped, report.result.outcome) == (8, 0, "ok")
    assert sorted(dlq_ids_on(bootstrap, topic, 8)) == sorted(ids)  # one run, everything
    assert {r["status"] for r in rows_by_id(conn).values()} == {"replayed"}
    (audit,) = audit_rows(conn)
    assert audit["details"]["canary"]["outcome"] == "passed"


def test_no_consumer_in_the_group_stops_after_the_wait(conn: Any, db_url: str, broker: Any) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    ids = _entries(conn, topic, 5, poison=False)
    settings = make_settings(db_url, bootstrap)
    canary = Canary(2, unique_name("nobody"), timedelta(seconds=2), "2s")

    report = replay(settings, ReplayRequest(EntryFilter(), canary=canary))

    assert report.exit_code == 1
    assert report.canary is not None
    assert (report.canary.outcome, report.canary.refailed) == (CanaryOutcome.NOT_PROCESSED, ())
    assert report.error is not None
    assert "did not commit past the 2 canary messages within 2s" in report.error
    assert f"{topic}[0] nothing committed, needs 2" in report.error
    assert (report.result.succeeded, report.result.skipped) == (2, 3)
    assert sorted(dlq_ids_on(bootstrap, topic, 2)) == sorted(ids[:2])  # nothing more sent
    assert {r["status"] for i, r in rows_by_id(conn).items() if i in ids[2:]} == {"pending"}


def test_a_re_failure_stored_by_another_writer_is_detected(
    conn: Any, db_url: str, broker: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    ids = _entries(conn, topic, 4, poison=False)
    event_ids = {
        r["dlq_id"]: r["event_id"] for r in conn.execute("SELECT dlq_id, event_id FROM dlq")
    }
    # Entries of the canary's events that were there before it was sent are no re-failure:
    # an older discarded one of the second, another consumer's of the first.
    insert_entries(
        conn,
        [
            entry(consumer=CONSUMER, event_id=event_ids[ids[1]], status="discarded"),
            entry(consumer="billing", event_id=event_ids[ids[0]]),
        ],
    )

    def another_writer_stores_it_again() -> None:  # a plain INSERT, as the original service
        for consumer in (CONSUMER, "billing"):  # only the same consumer's counts
            conn.execute(
                "INSERT INTO dlq (consumer, event_id, event_payload, error_message)"
                " VALUES (%s, %s, %s, 'ValueError: still broken')",
                (consumer, event_ids[ids[0]], Jsonb({"n": 0})),
            )

    settings = make_settings(db_url, bootstrap)
    canary = Canary(2, None, timedelta(seconds=1), "1s")
    report = replay(
        settings,
        ReplayRequest(EntryFilter(consumers=(CONSUMER,)), canary=canary),
        listener=Notes(on_wait=another_writer_stores_it_again),
    )

    assert report.exit_code == 1
    assert report.canary is not None
    assert (report.canary.outcome, list(report.canary.refailed)) == (
        CanaryOutcome.REFAILED,
        [ids[0]],
    )
    assert sorted(dlq_ids_on(bootstrap, topic, 2)) == sorted(ids[:2])
    assert report.result.skipped == 2
