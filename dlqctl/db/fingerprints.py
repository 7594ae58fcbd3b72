"""Storing error_fingerprint on rows other writers stored without one (the backfill).

A walk of one status at a time along ``idx_dlq_status_failed``, oldest first, in batches of
``limit`` rows from the previous batch's keyset (``filters.walk``, fenced): rows come in
the order they were stored, so a batch touches few heap pages. Each batch is one short
statement: the batch's rows without a fingerprint are locked by ctid ``FOR UPDATE SKIP
LOCKED`` (a row another transaction holds is left for a later run, never waited for) and
get ``dlqctl_error_fingerprint(error_message)``, the SQL twin of ``dlqctl.core.fingerprint``
(migrations/0006). Inserts never wait for it: it only locks rows that exist, a batch at a
time. See docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status
from dlqctl.db.connection import Connection
from dlqctl.db.filters import ROW_CTID, Bound, bound_after, bound_params, fence_plans, walk

_BACKFILL = """
WITH batch AS MATERIALIZED (
    SELECT row_ctid AS tid, dlq_id, failed_at, error_fingerprint IS NULL AS missing
    FROM {walk} AS w
    ORDER BY failed_at, dlq_id
    LIMIT %(walk_limit)s
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
       last.failed_at, last.dlq_id
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT failed_at, dlq_id FROM batch ORDER BY failed_at DESC, dlq_id DESC LIMIT 1
) AS last ON true
"""

_MISSING = """
SELECT count(*) AS n FROM (
    SELECT 1 FROM dlq WHERE error_fingerprint IS NULL ORDER BY error_fingerprint
) AS missing
"""


@dataclass(frozen=True)
class BackfillBatch:
    """What one batch walked, found without a fingerprint, and changed, and where it
    stopped."""

    seen: int
    missing: int
    changed: int
    last: Bound | None


def backfill_query(status: Status, after: Bound | None) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement of one batch of ``status`` after ``after`` (add ``walk_limit``)."""
    entry_filter = EntryFilter(statuses=(status,))
    source = walk(
        entry_filter,
        (ROW_CTID, "dlq_id", "failed_at", "error_fingerprint"),
        newest_first=False,
        limit=True,
    )
    params = {**source.params, **bound_params(bound_after(entry_filter, after, newest_first=False))}
    return sql.SQL(_BACKFILL).format(walk=source.source), params


def backfill_batch(
    conn: Connection, status: Status, after: Bound | None, limit: int
) -> BackfillBatch:
    """Fingerprint the next ``limit`` rows of ``status`` after ``after`` (autocommit mode)."""
    query, params = backfill_query(status, after)
    with conn.transaction():
        fence_plans(conn)
        row = conn.execute(query, {**params, "walk_limit": limit}).fetchone()
    assert row is not None
    last = None if row["dlq_id"] is None else (row["failed_at"], row["dlq_id"])
    return BackfillBatch(row["seen"], row["missing"], row["changed"], last)


def count_missing(conn: Connection) -> int:
    """Rows without a stored fingerprint (the NULL end of idx_dlq_error_groups)."""
    with conn.transaction():
        fence_plans(conn)
        row = conn.execute(_MISSING).fetchone()
    assert row is not None
    return int(row["n"])
