"""The DLQ writer against the real table: one entry per failed message, jsonb-safe payloads."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import psycopg
import pytest

from dlqctl.core.errors import DatabaseUnavailable, SchemaMissing
from dlqctl.core.events import MISSING, decode_event, failed_event
from dlqctl.core.fingerprint import fingerprint
from dlqctl.db.writer import DlqWriter
from tests.fakes import NS, FakeMessage


def _rows(conn: Any) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM dlq ORDER BY source_offset, failed_at").fetchall()


def test_write_stores_one_entry_with_provenance(conn: Any, db_url: str) -> None:
    event = {"event_id": "3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10", "amount": 12.5}
    raw = json.dumps(event).encode()
    message = FakeMessage(raw, headers_=[("dlq-id", b"abc"), ("bin", b"\xff"), ("n", None)])
    with DlqWriter(db_url) as writer:
        stored = writer.write(
            "orders-projector", event, ValueError("amount 12.5 too high"), message
        )
    assert stored.created
    [row] = _rows(conn)
    assert row["dlq_id"] == stored.dlq_id
    assert row["consumer"] == "orders-projector"
    assert row["event_id"] == uuid.UUID(event["event_id"])
    assert row["event_payload"] == event
    assert row["error_message"] == "ValueError: amount 12.5 too high"
    assert row["error_fingerprint"] == fingerprint("ValueError: amount 12.5 too high")
    assert (row["status"], row["retry_count"]) == ("pending", 0)
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == (
        "orders",
        2,
        17,
    )
    assert row["event_key"] == b"order-1"
    assert row["event_raw"] == raw
    assert row["event_headers"] == [
        ["dlq-id", base64.b64encode(b"abc").decode()],
        ["bin", "/w=="],
        ["n", None],
    ]


def test_a_redelivered_message_is_a_no_op(conn: Any, db_url: str) -> None:
    raw = b'{"id": "o-1"}'
    with DlqWriter(db_url) as writer:
        first = writer.write("orders", json.loads(raw), ValueError("x"), FakeMessage(raw))
        again = writer.write("orders", json.loads(raw), ValueError("x, again"), FakeMessage(raw))
        # The same event from another offset (a replay that failed again) is a new entry.
        replayed = writer.write(
            "orders", json.loads(raw), ValueError("x"), FakeMessage(raw, offset_=99)
        )
    assert first.created and not again.created and replayed.created
    assert again.dlq_id == first.dlq_id
    rows = _rows(conn)
    assert [r["source_offset"] for r in rows] == [17, 99]
    assert rows[0]["error_message"] == "ValueError: x"


def test_without_a_message_there_is_no_duplicate_guard(conn: Any, db_url: str) -> None:
    with DlqWriter(db_url) as writer:
        a = writer.write("orders", {"id": 1}, "Boom: 1")
        b = writer.write("orders", {"id": 1}, "Boom: 1")
    assert a.created and b.created and a.dlq_id != b.dlq_id
    assert {r["event_id"] for r in _rows(conn)} == {uuid.uuid5(NS, "1")}


TRICKY = [
    b"\xff\xfe\x00 binary",
    b'{"x": NaN}',
    b'{"x": "nul \\u0000 inside"}',
    b'{"\\u0000key": 1}',
    b'["lone \\ud800 surrogate"]',
    b"not json at all",
    b"",
]


@pytest.mark.parametrize("raw", TRICKY)
def test_bytes_jsonb_rejects_are_stored_exactly_with_the_stand_in(
    conn: Any, db_url: str, raw: bytes
) -> None:
    with pytest.raises((ValueError, RecursionError)):
        decode_event(raw)
    entry = failed_event("c", MISSING, ValueError("undecodable"), FakeMessage(raw))
    with DlqWriter(db_url) as writer:
        writer.write_many([entry])
    [row] = _rows(conn)
    assert row["event_raw"] == raw
    assert row["event_payload"] == {"_dlqctl_raw_base64": base64.b64encode(raw).decode()}
    assert row["event_id"] == uuid.uuid5(NS, "orders/2/17/" + hashlib.sha256(raw).hexdigest())


@pytest.mark.parametrize(
    "raw",
    [
        '{"s": "caf\u00e9 \\ud83d\\ude00 \\\\u0000", "n": 0.10000000000000000555}'.encode(),
        b'{"big": 123456789012345678901234567890, "e": 1e300, "deep": [[[[[]]]]]}',
        b'"\\t\\n\\"\\\\"',
    ],
)
def test_what_decodes_is_stored_as_jsonb_exactly(conn: Any, db_url: str, raw: bytes) -> None:
    event = decode_event(raw)
    entry = failed_event("c", event, ValueError("x"), FakeMessage(raw), payload=raw.decode())
    with DlqWriter(db_url) as writer:
        writer.write_many([entry])
    row = conn.execute(
        "SELECT event_payload::text = %s::jsonb::text AS same, event_raw FROM dlq", [raw.decode()]
    ).fetchone()
    assert row["same"] and row["event_raw"] == raw


def test_a_payload_jsonb_refuses_at_insert_falls_back_to_the_stand_in(
    conn: Any, db_url: str
) -> None:
    raw = b'{"n": 1e1000000}'  # Python reads inf; jsonb's numeric overflows
    good = failed_event("c", {"ok": 1}, ValueError("x"), FakeMessage(b'{"ok": 1}', offset_=1))
    bad = failed_event(
        "c", {"n": 1}, ValueError("x"), FakeMessage(raw, offset_=2), payload=raw.decode()
    )
    with DlqWriter(db_url) as writer:
        stored = writer.write_many([good, bad])
    assert [s.created for s in stored] == [True, True]
    rows = _rows(conn)
    assert rows[0]["event_payload"] == {"ok": 1}
    assert rows[1]["event_payload"] == {"_dlqctl_raw_base64": base64.b64encode(raw).decode()}
    assert rows[1]["event_raw"] == raw


def test_a_batch_is_stored_in_order_with_duplicates_reported(conn: Any, db_url: str) -> None:
    entries = [
        failed_event("c", {"id": i}, ValueError(f"e{i}"), FakeMessage(b"{}", offset_=i))
        for i in range(5)
    ]
    with DlqWriter(db_url) as writer:
        first = writer.write_many(entries[:3])
        second = writer.write_many(entries)
    assert [s.created for s in first] == [True] * 3
    assert [s.created for s in second] == [False] * 3 + [True] * 2
    assert [s.dlq_id for s in second[:3]] == [s.dlq_id for s in first]
    assert len(_rows(conn)) == 5


def test_the_writer_reconnects_after_losing_its_connection(conn: Any, db_url: str) -> None:
    with DlqWriter(db_url, application_name="dlqctl-writer-test") as writer:
        writer.write("c", {"id": 1}, "E: 1", FakeMessage(b"{}", offset_=1))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'dlqctl-writer-test'"
        )
        with pytest.raises(DatabaseUnavailable):
            writer.write("c", {"id": 2}, "E: 2", FakeMessage(b"{}", offset_=2))
        writer.write("c", {"id": 2}, "E: 2", FakeMessage(b"{}", offset_=2))
    assert [r["source_offset"] for r in _rows(conn)] == [1, 2]


def test_an_unreachable_database_is_reported_as_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        DlqWriter("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2").check_schema()


def test_a_table_without_the_dlqctl_columns_asks_for_migrate(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as c:
        c.execute(
            "CREATE TABLE dlq (dlq_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
            " consumer varchar(255) NOT NULL, event_id uuid NOT NULL,"
            " event_payload jsonb NOT NULL, error_message text NOT NULL,"
            " failed_at timestamptz NOT NULL DEFAULT now(),"
            " retry_count integer NOT NULL DEFAULT 0,"
            " status varchar(50) NOT NULL DEFAULT 'pending')"
        )
    with DlqWriter(empty_db_url) as writer, pytest.raises(SchemaMissing, match="dlqctl migrate"):
        writer.check_schema()


def test_a_missing_duplicate_guard_asks_for_migrate(conn: Any, db_url: str) -> None:
    conn.execute("DROP INDEX uq_dlq_source_message")
    with DlqWriter(db_url) as writer, pytest.raises(SchemaMissing, match="uq_dlq_source_message"):
        writer.write("c", {"id": 1}, "E", FakeMessage(b"{}"))
    assert _rows(conn) == []


def test_a_writer_from_settings_uses_the_configured_database(conn: Any, db_url: str) -> None:
    from dlqctl.core.settings import Settings

    with DlqWriter.from_settings(Settings(database_url=db_url)) as writer:
        writer.write("billing", {"id": "b-1"}, KeyError("customer_id"))
    [row] = _rows(conn)
    assert (row["consumer"], row["error_message"]) == ("billing", "KeyError: 'customer_id'")
