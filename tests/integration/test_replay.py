"""Replay's use case on the real PostgreSQL and tansu: concurrent runs, use as a library."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status
from dlqctl.core.replay import ReplayRequest
from dlqctl.usecases.replay import replay
from tests.factories import entry, insert_entries, make_settings
from tests.fakes import BarrierListener
from tests.kafka_helpers import create_topic, read_topic
from tests.replay_helpers import dlq_ids_on, header, rows_by_id


@pytest.mark.parametrize(
    ("status", "statuses", "consumers"),
    [
        ("pending", (), ()),  # the default: one index walk
        ("pending", (Status.PENDING, Status.DISCARDED), ()),  # LATERAL pick, then lock
        ("replayed", (Status.REPLAYED,), ("orders", "billing")),  # entries stay 'replayed'
    ],
)
def test_two_concurrent_replays_publish_each_entry_exactly_once(
    conn: Any,
    db_url: str,
    broker: Any,
    status: str,
    statuses: tuple[Status, ...],
    consumers: tuple[str, ...],
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap, partitions=3)
    ids = insert_entries(
        conn,
        [
            entry(consumer=("orders", "billing")[i % 2], status=status, source_topic=topic)
            for i in range(240)
        ],
    )
    settings = make_settings(db_url, bootstrap)
    entry_filter = EntryFilter(statuses=statuses, consumers=consumers)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run() -> None:
        report = replay(
            settings, ReplayRequest(entry_filter, batch_size=7), listener=BarrierListener(barrier)
        )
        results.append(report.result)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert len(results) == 2
    published = dlq_ids_on(bootstrap, topic, len(ids))
    assert sorted(published) == sorted(ids)  # every entry, none twice
    assert sum(r.succeeded for r in results) == len(ids)
    for r in results:
        assert r.succeeded >= 7  # both ran
        assert (r.failed, r.outcome) == (0, "ok")
        assert r.matched == r.succeeded + r.skipped == len(ids)
    retry_counts = {r["retry_count"] for r in rows_by_id(conn).values()}
    assert retry_counts == {1}
    assert {r["status"] for r in rows_by_id(conn).values()} == {"replayed"}


def test_library_use_without_listener_or_stop(conn: Any, db_url: str, broker: Any) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(3)])
    report = replay(make_settings(db_url, bootstrap), ReplayRequest(EntryFilter(), rate=50))
    assert (report.exit_code, report.result.succeeded, report.error) == (0, 3, None)
    assert sorted(dlq_ids_on(bootstrap, topic, 3)) == sorted(ids)
    assert header(read_topic(bootstrap, topic, 3)[0], "dlq-consumer") == "orders"
