"""SQL of discard and purge: batched changes that walk an index and never wait for row locks.

Each batch is one statement (one short transaction in autocommit mode) of three steps:

1. ``batch``: the next ``limit`` matching rows in (failed_at, dlq_id) order after the keyset
   of the previous batch. The keyset bounds the index range the scan starts from
   (``idx_dlq_failed_at``, or ``idx_dlq_status_failed`` for one status, whichever the planner
   prefers for the filter), so the walk never revisits rows an earlier batch deleted or
   skipped, however many batches there are.
2. ``claimed``: those rows locked ``FOR UPDATE SKIP LOCKED``, with the selection checked again
   (a row another transaction changed since the snapshot is left out). A row held by a
   concurrent replay is skipped, never waited for.
3. the DELETE or UPDATE of the claimed rows, found again by ctid (a TID scan, no second trip
   through the primary key).

``seen - changed`` is what the batch skipped; the caller moves the keyset to ``last``.
One walk covers every status and consumer of the filter: walking each status separately
would make a walk over idx_dlq_failed_at visit the other statuses' rows once per status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status
from dlqctl.db.connection import Connection
from dlqctl.db.filters import build_filter

# A table lock held elsewhere (a migration, a manual LOCK TABLE) fails the run after this
# instead of leaving it, and the writers queued behind it, waiting.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Keyset:
    """Position of the walk: the last row of the previous batch."""

    failed_at: datetime
    dlq_id: UUID


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch saw and changed, and where the next one starts."""

    seen: int
    changed: int
    last: Keyset | None

    @property
    def skipped(self) -> int:
        return self.seen - self.changed


def set_lock_timeout(conn: Connection) -> None:
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))


_BATCH = """
WITH batch AS (
    SELECT ctid AS tid, dlq_id, failed_at FROM dlq
    {where}{keyset}
    ORDER BY failed_at, dlq_id
    LIMIT %(limit)s
), claimed AS (
    SELECT ctid AS tid FROM dlq
    {where} AND ctid = ANY(ARRAY(SELECT tid FROM batch))
    FOR UPDATE SKIP LOCKED
), changed AS (
    {change} WHERE ctid = ANY(ARRAY(SELECT tid FROM claimed))
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch) AS seen,
       (SELECT count(*) FROM changed) AS changed,
       last.failed_at, last.dlq_id
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT failed_at, dlq_id FROM batch ORDER BY failed_at DESC, dlq_id DESC LIMIT 1
) AS last ON true
"""

DELETE = sql.SQL("DELETE FROM dlq")
DISCARD = sql.SQL(
    "UPDATE dlq SET status = 'discarded', status_changed_at = now(),"
    " status_reason = %(reason)s, status_changed_by = %(actor)s"
)


def _after(after: Keyset | None, params: dict[str, Any]) -> sql.Composable:
    """`` AND (failed_at, dlq_id) > keyset`` (nothing before the first batch)."""
    if after is None:
        return sql.SQL("")
    params.update(after_at=after.failed_at, after_id=after.dlq_id)
    return sql.SQL(" AND (failed_at, dlq_id) > (%(after_at)s, %(after_id)s)")


def batch_statement(
    entry_filter: EntryFilter, after: Keyset | None, change: sql.Composable
) -> tuple[sql.Composed, dict[str, Any]]:
    """One batch of ``change`` after ``after`` (for the runs, and for EXPLAIN in the tests)."""
    where = build_filter(entry_filter)
    params = dict(where.params)
    keyset = _after(after, params)
    query = sql.SQL(_BATCH).format(where=where.where(), keyset=keyset, change=change)
    return query, params


def _run_batch(
    conn: Connection,
    entry_filter: EntryFilter,
    after: Keyset | None,
    limit: int,
    change: sql.Composable,
    extra: dict[str, Any],
) -> BatchOutcome:
    query, params = batch_statement(entry_filter, after, change)
    row = conn.execute(query, {**params, **extra, "limit": limit}).fetchone()
    assert row is not None
    last = None if row["dlq_id"] is None else Keyset(row["failed_at"], row["dlq_id"])
    return BatchOutcome(seen=row["seen"], changed=row["changed"], last=last)


def delete_batch(
    conn: Connection,
    entry_filter: EntryFilter,
    after: Keyset | None,
    limit: int,
) -> BatchOutcome:
    """Delete the next batch of matching rows."""
    return _run_batch(conn, entry_filter, after, limit, DELETE, {})


def discard_batch(
    conn: Connection,
    entry_filter: EntryFilter,
    after: Keyset | None,
    limit: int,
    *,
    reason: str | None,
    actor: str,
) -> BatchOutcome:
    """Mark the next batch of matching rows discarded."""
    extra = {"reason": reason, "actor": actor}
    return _run_batch(conn, entry_filter, after, limit, DISCARD, extra)


_DISCARD_IDS = """
WITH claimed AS (
    SELECT ctid AS tid FROM dlq {where}
    FOR UPDATE SKIP LOCKED
)
{change} WHERE ctid = ANY(ARRAY(SELECT tid FROM claimed))
RETURNING dlq_id
"""


def discard_ids(
    conn: Connection,
    ids: Sequence[UUID],
    entry_filter: EntryFilter,
    *,
    reason: str | None,
    actor: str,
) -> list[UUID]:
    """Mark the given ids discarded where they are pending and unlocked; returns those changed."""
    where = build_filter(entry_filter.with_statuses((Status.PENDING,)), ids=ids)
    query = sql.SQL(_DISCARD_IDS).format(where=where.where(), change=DISCARD)
    rows = conn.execute(query, {**where.params, "reason": reason, "actor": actor}).fetchall()
    return [r["dlq_id"] for r in rows]


def age_range(
    conn: Connection, entry_filter: EntryFilter, ids: Sequence[UUID] | None = None
) -> tuple[datetime | None, datetime | None]:
    """Oldest and newest failed_at among the matching rows."""
    where = build_filter(entry_filter, ids=ids)
    query = sql.SQL("SELECT min(failed_at) AS oldest, max(failed_at) AS newest FROM dlq {}").format(
        where.where()
    )
    row = conn.execute(query, where.params).fetchone()
    assert row is not None
    return row["oldest"], row["newest"]


def count_after(conn: Connection, entry_filter: EntryFilter, after: Keyset | None) -> int:
    """Matching rows the walk has not reached yet (after an interrupt)."""
    where = build_filter(entry_filter)
    params = dict(where.params)
    keyset = _after(after, params)
    query = sql.SQL("SELECT count(*) AS n FROM dlq {}{}").format(where.where(), keyset)
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row["n"])
