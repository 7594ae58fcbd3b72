"""The writer links a replayed event that fails again back to its entry (real PostgreSQL):
one attempt per message, the entry reopened once, discarded entries left discarded, purged
or foreign entries giving new ones, and two writers racing recording one attempt."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dlqctl.core.events import failed_event
from dlqctl.db.writer import DlqWriter, StoredEntry
from tests.fakes import FakeMessage

CONSUMER = "orders-projector"


def _original(writer: DlqWriter, conn: Any, *, status: str = "replayed") -> uuid.UUID:
    """An entry as replay leaves it: stored by the consumer, then replayed once."""
    raw = b'{"event_id": "3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10", "amount": 12.5}'
    stored = writer.write(CONSUMER, raw, ValueError("amount 12.5 too high"), FakeMessage(raw))
    conn.execute(
        "UPDATE dlq SET status = %s, retry_count = 1, status_changed_at = now() - interval '1h',"
        " status_reason = %s, status_changed_by = 'oncall' WHERE dlq_id = %s",
        (status, "junk" if status == "discarded" else None, stored.dlq_id),
    )
    return stored.dlq_id


def _replayed(
    dlq_id: uuid.UUID | str, offset: int = 40, consumer: str = CONSUMER, partition: int = 2
) -> FakeMessage:
    """The message replay published for the entry, as the consumer reads it back."""
    raw = b'{"event_id": "3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10", "amount": 12.5}'
    headers = [
        ("trace", b"t-1"),
        ("dlq-id", str(dlq_id).encode()),
        ("dlq-consumer", consumer.encode()),
        ("dlq-retry-count", b"1"),
    ]
    return FakeMessage(raw, offset_=offset, partition_=partition, headers_=headers)


def _write(writer: DlqWriter, message: FakeMessage, error: str = "still too high") -> StoredEntry:
    return writer.write(CONSUMER, message.value(), ValueError(error), message)


def _entry(conn: Any, dlq_id: uuid.UUID) -> dict[str, Any]:
    row: dict[str, Any] = conn.execute("SELECT * FROM dlq WHERE dlq_id = %s", (dlq_id,)).fetchone()
    return row


def _attempts(conn: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = conn.execute(
        "SELECT dlq_id, attempt, error_message, source_topic, source_partition, source_offset,"
        " failed_at FROM dlq_attempts ORDER BY id"
    ).fetchall()
    return rows


def _count(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"])


def test_a_replayed_event_that_fails_again_reopens_its_entry(conn: Any, db_url: str) -> None:
    with DlqWriter(db_url) as writer:
        dlq_id = _original(writer, conn)
        before = _entry(conn, dlq_id)
        stored = _write(writer, _replayed(dlq_id))
    assert (stored.dlq_id, stored.linked, stored.created) == (dlq_id, True, True)
    assert (stored.attempt, stored.reopened) == (1, True)
    after = _entry(conn, dlq_id)
    assert _count(conn) == 1
    assert after["status"] == "pending"
    assert after["error_message"] == "ValueError: still too high"
    assert after["error_fingerprint"] == "ValueError: still too high"
    assert after["status_reason"] == "failed again after replay 1"
    assert after["status_changed_by"] == CONSUMER
    assert after["status_changed_at"] > before["status_changed_at"]
    for column in ("failed_at", "retry_count", "event_payload", "event_raw", "event_headers"):
        assert after[column] == before[column], column
    [attempt] = _attempts(conn)
    assert attempt["dlq_id"] == dlq_id
    assert attempt["attempt"] == 1
    assert attempt["error_message"] == "ValueError: still too high"
    assert (attempt["source_topic"], attempt["source_partition"], attempt["source_offset"]) == (
        "orders",
        2,
        40,
    )
    assert attempt["failed_at"] == after["status_changed_at"]


def test_the_same_replayed_message_delivered_twice_records_one_attempt(
    conn: Any, db_url: str
) -> None:
    with DlqWriter(db_url) as writer:
        dlq_id = _original(writer, conn)
        _write(writer, _replayed(dlq_id))
        reopened = _entry(conn, dlq_id)
        again = _write(writer, _replayed(dlq_id), error="a different text on re-delivery")
        # Replayed again and failed again: a new message, a new attempt.
        conn.execute(
            "UPDATE dlq SET status = 'replayed', retry_count = 2 WHERE dlq_id = %s", (dlq_id,)
        )
        second = _write(writer, _replayed(dlq_id, offset=41), error="third time")
    assert (again.linked, again.created, again.dlq_id) == (True, False, dlq_id)
    assert (second.linked, second.created, second.attempt) == (True, True, 2)
    assert [(a["attempt"], a["source_offset"]) for a in _attempts(conn)] == [(1, 40), (2, 41)]
    assert _count(conn) == 1
    after = _entry(conn, dlq_id)
    assert after["status_reason"] == "failed again after replay 2"
    assert after["error_message"] == "ValueError: third time"
    assert reopened["error_message"] == "ValueError: still too high"


def test_a_discarded_entry_stays_discarded(conn: Any, db_url: str) -> None:
    with DlqWriter(db_url) as writer:
        dlq_id = _original(writer, conn, status="discarded")
        before = _entry(conn, dlq_id)
        stored = _write(writer, _replayed(dlq_id))
    assert (stored.linked, stored.created, stored.reopened) == (True, True, False)
    assert _entry(conn, dlq_id) == before
    assert [a["attempt"] for a in _attempts(conn)] == [1]
    assert _count(conn) == 1


def test_a_purged_or_foreign_entry_gives_a_new_entry(conn: Any, db_url: str) -> None:
    with DlqWriter(db_url) as writer:
        dlq_id = _original(writer, conn)
        # Named by another consumer's header; then an entry of another consumer named by ours.
        foreign_header = _write(writer, _replayed(dlq_id, offset=50, consumer="billing"))
        theirs = writer.write("billing", b'{"id": "b-1"}', ValueError("x"), FakeMessage(b"{}"))
        foreign_entry = _write(writer, _replayed(theirs.dlq_id, offset=51))
        # Not a UUID at all.
        garbage = _write(writer, _replayed("old-entry", offset=52))
        conn.execute("DELETE FROM dlq WHERE dlq_id = %s", (dlq_id,))
        purged = _write(writer, _replayed(dlq_id, offset=53))
    for stored in (foreign_header, foreign_entry, garbage, purged):
        assert (stored.linked, stored.created) == (False, True)
        assert stored.dlq_id not in (dlq_id, theirs.dlq_id)
    assert _attempts(conn) == []
    rows = conn.execute(
        "SELECT source_offset, status, retry_count FROM dlq WHERE consumer = %s ORDER BY 1",
        (CONSUMER,),
    ).fetchall()
    assert [(r["source_offset"], r["status"], r["retry_count"]) for r in rows] == [
        (50, "pending", 0),
        (51, "pending", 0),
        (52, "pending", 0),
        (53, "pending", 0),
    ]


def test_a_batch_mixing_new_failures_and_links_keeps_its_order(conn: Any, db_url: str) -> None:
    with DlqWriter(db_url) as writer:
        first, second = _original(writer, conn), None
        other = b'{"event_id": "9b2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a11"}'
        second_stored = writer.write(
            CONSUMER, other, ValueError("y"), FakeMessage(other, offset_=9)
        )
        second = second_stored.dlq_id
        conn.execute("UPDATE dlq SET status = 'replayed', retry_count = 1")
        messages = [
            FakeMessage(b'{"n": 1}', offset_=60),
            _replayed(second, offset=61),
            FakeMessage(b'{"n": 2}', offset_=62),
            _replayed(first, offset=63),
        ]
        entries = [failed_event(CONSUMER, m.value(), ValueError("z"), m) for m in messages]
        results = writer.write_many(entries)
    assert [r.linked for r in results] == [False, True, False, True]
    assert [r.dlq_id for r in results if r.linked] == [second, first]
    assert all(r.created for r in results)
    assert _count(conn) == 4
    assert sorted(a["source_offset"] for a in _attempts(conn)) == [61, 63]


def test_two_writers_racing_on_one_message_record_one_attempt(conn: Any, db_url: str) -> None:
    with DlqWriter(db_url) as writer:
        dlq_id = _original(writer, conn)
    results: list[StoredEntry] = []
    errors: list[BaseException] = []

    def store() -> None:
        try:
            with DlqWriter(db_url) as racer:
                results.append(_write(racer, _replayed(dlq_id)))
        except BaseException as exc:
            errors.append(exc)

    # Both writers queue behind a lock on the entry, then go at once when it is released.
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM dlq WHERE dlq_id = %s FOR UPDATE", (dlq_id,))
        threads = [threading.Thread(target=store) for _ in range(2)]
        for thread in threads:
            thread.start()
        waiting, deadline = 0, time.monotonic() + 60
        while waiting < 2:  # both blocked on the lock before it is released
            assert time.monotonic() < deadline, "the writers never queued behind the lock"
            waiting = int(
                conn.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity"
                    " WHERE application_name = 'dlqctl-consumer' AND wait_event_type = 'Lock'"
                ).fetchone()["n"]
            )
        holder.commit()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(r.created for r in results) == [False, True]
    assert {r.dlq_id for r in results} == {dlq_id}
    assert len(_attempts(conn)) == 1
    assert _count(conn) == 1
    assert _entry(conn, dlq_id)["status"] == "pending"


def _documented_grants() -> list[str]:
    """The GRANT statements of the service writer role, docs/operations.md."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = doc.split("### Service writer", 1)[1]
    block = section.split("```sql", 1)[1].split("```", 1)[0]
    statements = [s.strip() for s in block.split(";") if s.strip().startswith("GRANT ")]
    assert statements and all("dlq_writer" in s for s in statements), statements
    return statements


def test_the_documented_grants_are_enough_for_the_writer(conn: Any, db_url: str) -> None:
    role = f"dlq_writer_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        for statement in _documented_grants():
            conn.execute(statement.replace("dlq_writer", role))  # type: ignore[arg-type]
        with DlqWriter(db_url) as owner:
            dlq_id = _original(owner, conn)
        as_role = db_url.replace("postgresql://postgres@", f"postgresql://{role}@")
        assert role in as_role
        with DlqWriter(as_role) as writer:
            writer.check_schema()
            new = writer.write(CONSUMER, b'{"id": "x-1"}', ValueError("x"), FakeMessage(b"{}"))
            linked = _write(writer, _replayed(dlq_id))
            again = _write(writer, _replayed(dlq_id))
        assert new.created and not new.linked
        assert (linked.linked, linked.created, again.created) == (True, True, False)
        assert _entry(conn, dlq_id)["status"] == "pending"
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
