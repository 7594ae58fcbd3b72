"""SQL of discard and purge: batched changes that walk an index and never wait for row locks.

Each batch is one statement (one short transaction, its plans fenced by
``filters.fence_plans``) of three steps:

1. ``batch``: the next ``limit`` matching rows in (failed_at, dlq_id) order after the keyset
   of the previous batch, read through ``filters.walk``: one range of
   ``idx_dlq_consumer_status_failed`` per (consumer, status) pair, or of
   ``idx_dlq_status_failed`` per status, each starting at the keyset and stopping after
   ``limit`` rows. The walk never revisits rows an earlier batch deleted or skipped, however
   many batches there are, and never reads another consumer's or status's rows.
2. ``claimed``: those rows locked ``FOR UPDATE SKIP LOCKED`` by ctid (a TID scan, the only
   plan: no other condition an index could serve). A row another transaction changed since
   the snapshot has a new ctid, so the lock's recheck leaves it out; a row held by a
   concurrent replay is skipped, never waited for.
3. the DELETE or UPDATE of the claimed rows, found again by ctid (a TID scan, no second trip
   through the primary key); a DELETE also deletes the entries' ``dlq_attempts`` rows
   through ``uq_dlq_attempts_source_message`` (it leads with dlq_id). A delete batch also
   rules out sequential scans (``fence_batch``): one over ``dlq_attempts`` looks cheap
   whenever that table's statistics say it is small, and reads all of it when it is not.

``seen - changed`` is what the batch skipped; the caller moves the keyset to ``last``.
The age range a dry run shows is the first row of the walk in each direction; counts read
exactly the matching rows. See docs/performance.md.
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
from dlqctl.db.filters import (
    ROW_CTID,
    bound_after,
    bound_params,
    fence_plans,
    walk,
)

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
WITH batch AS MATERIALIZED (
    SELECT row_ctid AS tid, dlq_id, failed_at FROM {walk} AS w
    ORDER BY failed_at, dlq_id
    LIMIT %(walk_limit)s
), claimed AS (
    SELECT ctid AS tid FROM dlq
    WHERE ctid = ANY(ARRAY(SELECT tid FROM batch))
    FOR UPDATE SKIP LOCKED
), changed AS (
    {change} WHERE ctid = ANY(ARRAY(SELECT tid FROM claimed))
    RETURNING dlq_id
){cascade}
SELECT (SELECT count(*) FROM batch) AS seen,
       (SELECT count(*) FROM changed) AS changed,
       last.failed_at, last.dlq_id
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT failed_at, dlq_id FROM batch ORDER BY failed_at DESC, dlq_id DESC LIMIT 1
) AS last ON true
"""

DELETE = sql.SQL("DELETE FROM dlq")
# A deleted entry's attempts go with it, in the same statement (dlq_attempts has no foreign
# key: it would make the original system's TRUNCATE dlq fail).
_DELETE_ATTEMPTS = """
, attempts AS (
    DELETE FROM dlq_attempts WHERE dlq_id = ANY(ARRAY(SELECT dlq_id FROM changed))
)"""
_NO_SEQUENTIAL_SCANS = "SET LOCAL enable_seqscan = off"
DISCARD = sql.SQL(
    "UPDATE dlq SET status = 'discarded', status_changed_at = now(),"
    " status_reason = %(reason)s, status_changed_by = %(actor)s"
)


def _bound(entry_filter: EntryFilter, after: Keyset | None) -> dict[str, Any]:
    position = None if after is None else (after.failed_at, after.dlq_id)
    return bound_params(bound_after(entry_filter, position, newest_first=False))


def batch_statement(
    entry_filter: EntryFilter, after: Keyset | None, change: sql.Composable
) -> tuple[sql.Composed, dict[str, Any]]:
    """One batch of ``change`` after ``after`` (for the runs, and for EXPLAIN in the tests);
    add ``walk_limit``, and run it after ``fence_plans``."""
    columns = (ROW_CTID, "dlq_id", "failed_at")
    source = walk(entry_filter, columns, newest_first=False, limit=True)
    params = {**source.params, **_bound(entry_filter, after)}
    cascade = sql.SQL(_DELETE_ATTEMPTS if change is DELETE else "")
    query = sql.SQL(_BATCH).format(walk=source.source, change=change, cascade=cascade)
    return query, params


def fence_batch(conn: Connection, change: sql.Composable) -> None:
    """The plan fences of one batch of ``change``, inside its transaction."""
    fence_plans(conn)
    if change is DELETE:
        conn.execute(_NO_SEQUENTIAL_SCANS)


def _run_batch(
    conn: Connection,
    entry_filter: EntryFilter,
    after: Keyset | None,
    limit: int,
    change: sql.Composable,
    extra: dict[str, Any],
) -> BatchOutcome:
    query, params = batch_statement(entry_filter, after, change)
    with conn.transaction():
        fence_batch(conn, change)
        row = conn.execute(query, {**params, **extra, "walk_limit": limit}).fetchone()
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
WITH picked AS MATERIALIZED (
    SELECT row_ctid FROM {walk} AS w
), claimed AS (
    SELECT ctid AS tid FROM dlq
    WHERE ctid = ANY(ARRAY(SELECT row_ctid FROM picked))
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
    pending = entry_filter.with_statuses((Status.PENDING,))
    source = walk(pending, (ROW_CTID, "dlq_id"), ids=ids)
    query = sql.SQL(_DISCARD_IDS).format(walk=source.source, change=DISCARD)
    rows = conn.execute(query, {**source.params, "reason": reason, "actor": actor}).fetchall()
    return [r["dlq_id"] for r in rows]


# The first row of the walk in each direction.
_AGE_RANGE = """
SELECT (SELECT failed_at FROM {oldest} AS o ORDER BY failed_at, dlq_id LIMIT 1) AS oldest,
       (SELECT failed_at FROM {newest} AS n ORDER BY failed_at DESC, dlq_id DESC LIMIT 1)
           AS newest
"""


def age_range_query(
    entry_filter: EntryFilter, ids: Sequence[UUID] | None = None
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``age_range`` (run it after ``fence_plans``)."""
    columns = ("dlq_id", "failed_at")
    oldest = walk(entry_filter, columns, ids=ids, newest_first=False, limit=True, prefix="old")
    newest = walk(entry_filter, columns, ids=ids, limit=True, prefix="new")
    params = {**oldest.params, **newest.params, "old_limit": 1, "new_limit": 1}
    query = sql.SQL(_AGE_RANGE).format(oldest=oldest.source, newest=newest.source)
    return query, params


def age_range(
    conn: Connection, entry_filter: EntryFilter, ids: Sequence[UUID] | None = None
) -> tuple[datetime | None, datetime | None]:
    """Oldest and newest failed_at among the matching rows."""
    query, params = age_range_query(entry_filter, ids)
    with conn.transaction():
        fence_plans(conn)
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row["oldest"], row["newest"]


_COUNT_AFTER = """
SELECT count(*) AS n FROM {walk} AS w
"""


def count_after(conn: Connection, entry_filter: EntryFilter, after: Keyset | None) -> int:
    """Matching rows the walk has not reached yet (after an interrupt)."""
    source = walk(entry_filter, ("dlq_id",), newest_first=False)
    params = {**source.params, **_bound(entry_filter, after)}
    query = sql.SQL(_COUNT_AFTER).format(walk=source.source)
    with conn.transaction():
        fence_plans(conn)
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row["n"])
