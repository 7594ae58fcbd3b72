"""Replay's use case on the real PostgreSQL and tansu: concurrent runs, use as a library."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any
from unittest.mock import ANY

import psycopg
import pytest
from psycopg.types.json import Jsonb

from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status
from dlqctl.core.replay import ReplayRequest
from dlqctl.usecases.replay import replay
from tests.factories import entry, insert_entries, make_settings
from tests.fakes import AtConfirm, BarrierListener
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
    # Both runs started together (the barrier); how the batches split between them is the
    # scheduler's business: on busy cores one run can take every batch, the other none.
    for r in results:
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


# A commit that waits (a deferred constraint trigger, run at COMMIT) until the test releases
# advisory lock 8811: the mark of run "run-a" has run its UPDATE but is not committed yet.
_SLOW_COMMIT = """
CREATE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock_shared(8811);
    PERFORM pg_advisory_unlock_shared(8811);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_slow_commit AFTER UPDATE ON dlq
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.status_changed_by = 'run-a') EXECUTE FUNCTION test_slow_commit();
"""


def _wait_until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "statuses",
    [(Status.REPLAYED,), (Status.REPLAYED, Status.PENDING)],  # one index walk; LATERAL pick
)
def test_a_run_starting_while_another_commits_its_mark_does_not_publish_it_again(
    conn: Any, db_url: str, broker: Any, statuses: tuple[Status, ...]
) -> None:
    """#11 item 8: run B starts between run A's mark UPDATE and its COMMIT; A's change is
    committed after B started, so B must leave the entry alone."""
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    (dlq_id,) = insert_entries(conn, [entry(status="replayed", retry_count=1, source_topic=topic)])
    conn.execute(_SLOW_COMMIT)
    entry_filter = EntryFilter(statuses=statuses)
    reports: dict[str, Any] = {}
    with psycopg.connect(db_url, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(8811)")
        run_a = threading.Thread(
            target=lambda: reports.setdefault(
                "a",
                replay(
                    make_settings(db_url, bootstrap, actor="run-a"), ReplayRequest(entry_filter)
                ),
            )
        )
        run_a.start()
        _wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                ).fetchone()["n"]
                == 1
            ),
            "run A's commit to wait",
        )

        def let_a_commit() -> None:  # B has started (and counted); now A's mark commits
            gate.execute("SELECT pg_advisory_unlock(8811)")
            run_a.join(60)

        reports["b"] = replay(
            make_settings(db_url, bootstrap, actor="run-b"),
            ReplayRequest(entry_filter),
            listener=AtConfirm(let_a_commit),
        )
    assert not run_a.is_alive()
    a, b = reports["a"].result, reports["b"].result
    assert (a.succeeded, a.outcome) == (1, "ok")
    assert (b.matched, b.succeeded, b.skipped, b.outcome) == (1, 0, 1, "ok")
    assert dlq_ids_on(bootstrap, topic, 1) == [dlq_id]  # published once
    assert rows_by_id(conn)[dlq_id]["retry_count"] == 2


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_an_edited_entry_replays_one_message_with_the_edit_and_the_original_key(
    conn: Any, db_url: str, broker: Any
) -> None:
    """#13 item 2: the edited value and headers, and only those; the originals untouched."""
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    original_headers = [["trace", _b64(b"t-1")], ["currency", _b64(b"XBT")]]
    edited, headers_only, plain = insert_entries(
        conn,
        [
            entry(
                source_topic=topic,
                event_key=b"order-1",
                event_raw=b'{"currency": "XBT"}',
                event_headers=original_headers,
            ),
            entry(source_topic=topic, event_key=b"order-2", event_headers=original_headers),
            entry(source_topic=topic, event_key=b"order-3", event_raw=b"\x00orig"),
        ],
    )
    conn.execute(
        "UPDATE dlq SET edited_raw = %s, edited_headers = %s, edited_at = now(),"
        " edited_by = 'someone' WHERE dlq_id = %s",
        (b'{"currency":"EUR"}', Jsonb([["trace", _b64(b"t-1")], ["dlq-id", _b64(b"x")]]), edited),
    )
    conn.execute(
        "UPDATE dlq SET edited_headers = %s, edited_at = now(), edited_by = 'someone'"
        " WHERE dlq_id = %s",
        (Jsonb([["fixed", _b64(b"yes")], ["nothing", None]]), headers_only),
    )
    before = conn.execute(
        "SELECT dlq_id, event_payload, event_raw, event_headers FROM dlq ORDER BY dlq_id"
    ).fetchall()

    report = replay(make_settings(db_url, bootstrap), ReplayRequest(EntryFilter()))

    assert (report.exit_code, report.result.succeeded) == (0, 3)
    messages = {header(m, "dlq-id"): m for m in read_topic(bootstrap, topic, 3)}
    assert len(messages) == 3  # one message per entry, the original never sent besides
    first = messages[str(edited)]
    assert (first.key, first.value) == (b"order-1", b'{"currency":"EUR"}')
    assert first.headers == [
        ("trace", b"t-1"),
        ("dlq-id", str(edited).encode()),
        ("dlq-consumer", b"orders"),
        ("dlq-retry-count", b"1"),
    ]
    second = messages[str(headers_only)]
    assert second.key == b"order-2"
    assert json.loads(second.value or b"") == {"event_id": ANY, "n": ANY}  # original payload
    assert second.headers[:2] == [("fixed", b"yes"), ("nothing", None)]
    assert messages[str(plain)].value == b"\x00orig"
    after = conn.execute(
        "SELECT dlq_id, event_payload, event_raw, event_headers FROM dlq ORDER BY dlq_id"
    ).fetchall()
    assert after == before  # the originals are never changed
