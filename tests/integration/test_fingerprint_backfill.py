"""The fingerprint backfill, and stats before, during and after it (docs/performance.md)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import psycopg

from dlqctl.core.backfill import BackfillRequest
from dlqctl.core.filters import EntryFilter
from dlqctl.core.fingerprint import fingerprint
from dlqctl.core.settings import Settings
from dlqctl.db.audit import list_actions
from dlqctl.usecases.fingerprints import backfill, missing_fingerprints
from dlqctl.usecases.inspect import compute_stats
from tests.factories import BASE_TIME, entry, insert_entries
from tests.fakes import StopAfter

MESSAGES = [
    "TimeoutError: upstream timed out after {n}ms",
    "KeyError: 'sku{n}'",
    "order {n} not found at 2026-11-{d:02d}T10:00:00Z",
    "über 'x{n}' ärger",
    "ValueError: plain",
]


def _rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        message = MESSAGES[i % len(MESSAGES)].format(n=i, d=1 + i % 28)
        rows.append(
            entry(
                consumer=("orders", "payments", "legacy")[i % 3],
                status=("pending", "replayed", "discarded")[i % 4 % 3],
                failed_at=BASE_TIME + timedelta(minutes=i),
                error_message=message,
                # A third stored by dlqctl's writer, the rest by other writers.
                error_fingerprint=fingerprint(message) if i % 3 == 0 else None,
            )
        )
    return rows


def _groups(settings: Settings, entry_filter: EntryFilter) -> dict[str, int]:
    return {g.fingerprint: g.count for g in compute_stats(settings, entry_filter).error_groups}


def test_stats_groups_are_the_same_before_and_after_the_backfill(conn: Any, db_url: str) -> None:
    rows = _rows(300)
    insert_entries(conn, rows)
    settings = Settings(database_url=db_url)
    expected = Counter(fingerprint(r["error_message"]) for r in rows)
    filtered = EntryFilter(consumers=("legacy",))
    expected_legacy = Counter(
        fingerprint(r["error_message"]) for r in rows if r["consumer"] == "legacy"
    )
    assert _groups(settings, EntryFilter()) == expected
    assert _groups(settings, filtered) == expected_legacy
    assert missing_fingerprints(settings) == 200

    result = backfill(settings, BackfillRequest(batch_size=7))

    assert (result.seen, result.missing, result.changed) == (300, 200, 200)
    assert missing_fingerprints(settings) == 0
    stored = conn.execute("SELECT error_message, error_fingerprint FROM dlq").fetchall()
    assert all(r["error_fingerprint"] == fingerprint(r["error_message"]) for r in stored)
    assert _groups(settings, EntryFilter()) == expected
    assert _groups(settings, filtered) == expected_legacy
    for group in compute_stats(settings, EntryFilter()).error_groups:
        assert fingerprint(group.example) == group.fingerprint
    again = backfill(settings)
    assert (again.seen, again.changed) == (0, 0)  # nothing missing: no walk at all


def test_backfill_skips_rows_another_transaction_holds(conn: Any, db_url: str) -> None:
    ids = insert_entries(conn, _rows(20))
    settings = Settings(database_url=db_url)
    held = [
        i
        for i in ids
        if conn.execute(
            "SELECT error_fingerprint IS NULL AS missing FROM dlq WHERE dlq_id = %s", (i,)
        ).fetchone()["missing"]
    ][:2]
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM dlq WHERE dlq_id = ANY(%s) FOR UPDATE", (held,))
        result = backfill(settings, BackfillRequest(batch_size=5))
        assert result.changed == result.missing - 2
    assert missing_fingerprints(settings) == 2
    assert backfill(settings).changed == 2
    assert missing_fingerprints(settings) == 0


def test_backfill_stops_when_asked(conn: Any, db_url: str) -> None:
    insert_entries(conn, _rows(30))
    settings = Settings(database_url=db_url)
    stop = threading.Event()
    request = BackfillRequest(batch_size=5)
    result = backfill(settings, request, listener=StopAfter(2, stop), stop=stop)
    assert result.interrupted
    assert result.batches == 2
    assert result.seen == 10
    assert result.write.outcome == "interrupted"
    assert result.write.skipped == result.write.matched - result.changed > 0
    [record] = list_actions(conn, action="backfill")
    assert record.outcome == "interrupted"
    assert record.counts["succeeded"] == result.changed
