"""Storing error_fingerprint on rows other writers stored without one (the backfill).

A walk over the primary key in batches of ``limit`` rows (``ORDER BY dlq_id`` from the
previous batch's last id: only the primary key delivers that order, fenced). Each batch is
one short statement: the batch's rows without a fingerprint are locked by ctid ``FOR UPDATE
SKIP LOCKED`` (a row another transaction holds is left for a later run, never waited for)
and get ``dlqctl_error_fingerprint(error_message)``, the SQL twin of
``dlqctl.core.fingerprint`` (migrations/0006). Inserts never wait for it: it only locks
rows that exist, a batch at a time. See docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from dlqctl.db.connection import Connection
from dlqctl.db.filters import MIN_ID, fence_plans

_BACKFILL = """
WITH batch AS MATERIALIZED (
    SELECT ctid AS tid, dlq_id, error_fingerprint IS NULL AS missing FROM dlq
    WHERE dlq_id > %(after)s
    ORDER BY dlq_id
    LIMIT %(limit)s
), claimed AS (
    SELECT ctid AS tid FROM dlq
    WHERE ctid = ANY(ARRAY(SELECT tid FROM batch WHERE missing))
    FOR UPDATE SKIP LOCKED
), changed AS (
    UPDATE dlq SET error_fingerprint = dlqctl_error_fingerprint(error_message)
    WHERE ctid = ANY(ARRAY(SELECT tid FROM claimed)) AND error_fingerprint IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch) AS seen,
       (SELECT count(*) FROM batch WHERE missing) AS missing,
       (SELECT count(*) FROM changed) AS changed,
       (SELECT dlq_id FROM batch ORDER BY dlq_id DESC LIMIT 1) AS last
"""

_MISSING = """
SELECT count(*) AS n FROM (
    SELECT 1 FROM dlq WHERE error_fingerprint IS NULL ORDER BY error_fingerprint
) AS missing
"""


@dataclass(frozen=True)
class BackfillBatch:
    """What one batch walked, found without a fingerprint, and changed."""

    seen: int
    missing: int
    changed: int
    last: UUID | None


def backfill_batch(conn: Connection, after: UUID | None, limit: int) -> BackfillBatch:
    """Fingerprint the rows of the next ``limit`` ids after ``after`` (autocommit mode)."""
    params: dict[str, Any] = {"after": after or MIN_ID, "limit": limit}
    with conn.transaction():
        fence_plans(conn)
        row = conn.execute(_BACKFILL, params).fetchone()
    assert row is not None
    return BackfillBatch(row["seen"], row["missing"], row["changed"], row["last"])


def count_missing(conn: Connection) -> int:
    """Rows without a stored fingerprint (the NULL end of idx_dlq_error_groups)."""
    with conn.transaction():
        fence_plans(conn)
        row = conn.execute(_MISSING).fetchone()
    assert row is not None
    return int(row["n"])
