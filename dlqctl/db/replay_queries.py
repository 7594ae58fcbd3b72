"""Replay's queries: the plan, the oversize preflight, the batch claim and the mark.

A run walks the selection in (failed_at, dlq_id) order from a keyset cursor through
``filters.walk``: one range of ``idx_dlq_consumer_status_failed`` per (consumer, status)
pair, or of ``idx_dlq_status_failed`` per status, each read forward from the cursor and
the only plan without a sort (every batch transaction is fenced by ``filters.fence_plans``).
One status and at most one consumer is a plain ``FOR UPDATE SKIP LOCKED`` walk of its
range; more ranges are merged (at most a batch from each) and then locked by ctid. A
batch costs the same at the start and at the end of a million rows. Explicit ids are
looked up by primary key. The mark is an UPDATE by primary key. See docs/performance.md.

The run's guard (see docs/replay.md, "Concurrent runs"): a run never claims an entry whose
status changed after the run started, judged by what is committed. ``started_now`` reads
the database's clock, then (in a later statement) the ids of the transactions in progress
(``pg_locks``). A change committed after that moment was made either by one of those
transactions (the row version's ``xmin`` is in the list: the claim leaves it out) or by a
transaction that got its id after the list was read — a mark's transaction has its id from
its claim on — so its mark ran after the start (``status_changed_at`` is later: left out
too). A mark that ran its UPDATE before the start but commits after it — the race a clock
alone misses — is caught by the first rule. Only the run's start does anything; the mark
and its commit are unchanged, so the guard costs replay no throughput. (The alternative, a
shared advisory lock taken by every mark and an exclusive one by a starting run, costs a
statement per batch and makes a starting run wait for the marks being committed — whose
entries then become part of its selection and are sent again.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import tuple_row

from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status
from dlqctl.db.connection import Connection
from dlqctl.db.filters import (
    ROW_CTID,
    SqlFilter,
    Walk,
    bound_params,
    build_filter,
    fence_plans,
    first_bound,
    index_ranges,
    is_fenced,
    keyset_condition,
    range_match,
    walk,
)

# Before every entry: the cursor of a run that has not claimed anything yet.
START_AT = datetime(1, 1, 1, tzinfo=UTC)
START_ID = "00000000-0000-0000-0000-000000000000"

# Columns of a claimed row, in order (tuples, not dicts: this is the hot path).
ID, FAILED_AT, CLAIMED, CONSUMER, EVENT_ID, RETRY_COUNT, SOURCE_TOPIC = range(7)
EVENT_KEY, EVENT_HEADERS, EVENT_RAW, PAYLOAD = range(7, 11)
EDITED_RAW, EDITED_HEADERS = range(11, 13)

# The message columns; the payload only as text and only when the raw bytes are missing;
# then the edit (`dlqctl edit`), published instead of the original value / headers.
_MESSAGE_COLUMNS = (
    "{t}.consumer, {t}.event_id::text AS event_id, {t}.retry_count, {t}.source_topic,"
    " {t}.event_key, {t}.event_headers, {t}.event_raw,"
    " CASE WHEN {t}.event_raw IS NULL THEN {t}.event_payload::text END AS payload,"
    " {t}.edited_raw, {t}.edited_headers"
)
_CLAIMED_COLUMNS = (
    "c.consumer, c.event_id, c.retry_count, c.source_topic, c.event_key, c.event_headers,"
    " c.event_raw, c.payload, c.edited_raw, c.edited_headers"
)


@dataclass(frozen=True)
class Selection:
    """The entries a run walks: the filter (statuses = the eligible ones) and explicit ids."""

    entry_filter: EntryFilter
    ids: Sequence[UUID] | None = None
    started_at: datetime | None = None
    # Ids of the transactions in progress when the run started.
    in_flight: tuple[str, ...] = ()

    @property
    def statuses(self) -> list[str]:
        return [s.value for s in (self.entry_filter.statuses or (Status.PENDING,))]

    def up_to(self, newest: datetime) -> Selection:
        """Only entries that failed no later than ``newest``: a run never chases entries
        that arrive while it runs (its own replays failing again, for one)."""
        horizon = newest + timedelta(microseconds=1)
        until = self.entry_filter.until
        if until is not None and until <= horizon:
            return self
        return replace(self, entry_filter=replace(self.entry_filter, until=horizon))

    @property
    def eligible(self) -> EntryFilter:
        """The filter with the eligible statuses."""
        return self.entry_filter.with_statuses(tuple(Status(s) for s in self.statuses))

    def guard(self) -> SqlFilter:
        """The run's guard: an entry whose status changed after the run started (another
        run replayed it, say) is no longer the run's."""
        guard = SqlFilter()
        if self.started_at is not None:
            guard.add(_GUARD, started_at=self.started_at, in_flight=list(self.in_flight))
        return guard

    def walk(self, columns: Sequence[str], *, limit: bool) -> Walk:
        """The selection's rows oldest first (see filters.walk)."""
        return walk(
            self.eligible,
            columns,
            ids=self.ids,
            newest_first=False,
            limit=limit,
            extra=self.guard(),
        )


# The run's guard (see the module docstring): not changed by a transaction that was in
# progress when the run started, nor changed by a later one.
_GUARD = """(NOT xmin = ANY(%(in_flight)s::xid[])
  AND (status_changed_at IS NULL OR status_changed_at < %(started_at)s))"""


@dataclass(frozen=True)
class PlanGroup:
    """Selected entries of one consumer, status and recorded source topic."""

    consumer: str
    status: Status
    source_topic: str | None
    count: int
    newest: datetime
    maybe_oversize: int


@dataclass(frozen=True)
class Batch:
    """One claim: the rows claimed (a row with ``CLAIMED`` false only carries the cursor:
    the last row walked, which may have been held by another run) and the cursor."""

    rows: list[tuple[Any, ...]]
    cursor: tuple[datetime, str]


_NOW = """
SELECT clock_timestamp() AS now
"""

# Read after _NOW, in a statement of its own. Every transaction (and subtransaction) holds
# the lock on its own id from the moment it has one until it ends; pg_locks is readable by
# every role. (A snapshot's in-progress list would not do: it leaves out the newest ids.)
_IN_FLIGHT = """
SELECT transactionid::text AS xid
FROM pg_locks
WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted
"""


def started_now(conn: Connection, selection: Selection) -> Selection:
    """The selection of a run that starts now: the database's clock, then the transactions
    in progress (the run's guard; see the module docstring)."""
    row = conn.execute(_NOW).fetchone()
    assert row is not None
    in_flight = tuple(sorted(r["xid"] for r in conn.execute(_IN_FLIGHT)))
    return replace(selection, started_at=row["now"], in_flight=in_flight)


# The selection's first ``walk_limit`` rows (all of them without a limit), oldest first.
_PICK = """
SELECT * FROM {walk} AS w ORDER BY w.failed_at, w.dlq_id{limit}
"""
_PICK_LIMIT = " LIMIT %(walk_limit)s"

_PICK_COLUMNS = (ROW_CTID, "dlq_id", "failed_at")


def _pick(
    selection: Selection, columns: Sequence[str], limit: int | None
) -> tuple[sql.Composed, dict[str, Any]]:
    source = selection.walk(columns, limit=limit is not None)
    params = dict(source.params)
    stop = ""
    if limit is not None:
        params["walk_limit"] = limit
        stop = _PICK_LIMIT
    query = sql.SQL(_PICK).format(walk=source.source, limit=sql.SQL(stop))
    return query, params


def _size_bound(table: str) -> str:
    """An upper bound of the wire size of the entry's message, cheap for ordinary rows.

    Values stored smaller than ``%(scan_from)s`` bytes count with their stored size (text
    would be a little longer; the producer still refuses the rare one that does not fit).
    Larger ones are measured as text, an upper bound of the compact JSON sent.
    """

    def measured(column: str) -> str:
        return (
            f"CASE WHEN pg_column_size({table}.{column}) >= %(scan_from)s"
            f" THEN octet_length({table}.{column}::text)"
            f" ELSE pg_column_size({table}.{column}) END"
        )

    return (
        f"(512 + coalesce(octet_length({table}.event_key), 36)"
        f" + coalesce(octet_length({table}.event_raw), {measured('event_payload')})"
        f" + coalesce({measured('event_headers')}, 0))"
    )


def _size_params(max_bytes: int) -> dict[str, Any]:
    # jsonb text is at most about twice its binary size, and a compressed value at most
    # 255 times smaller than its binary size: below this nothing reaches max_bytes.
    return {"max_bytes": max_bytes, "scan_from": max(1, max_bytes // 512)}


_PLAN_GROUPS = """
SELECT d.consumer, d.status, d.source_topic, count(*) AS n, max(d.failed_at) AS newest,
       count(*) FILTER (WHERE {size} > %(max_bytes)s) AS big
FROM ({pick}) AS d
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""

_SIZE_COLUMNS = (
    "dlq_id",
    "consumer",
    "status",
    "source_topic",
    "failed_at",
    "event_key",
    "event_raw",
    "event_payload",
    "event_headers",
)


def plan_groups(
    conn: Connection, selection: Selection, *, limit: int | None, max_bytes: int
) -> list[PlanGroup]:
    """What the selection holds per consumer, status and source topic (with ``limit``: of
    its first ``limit`` entries), and how many might exceed ``max_bytes``."""
    pick, params = _pick(selection, _SIZE_COLUMNS, limit)
    query = sql.SQL(_PLAN_GROUPS).format(size=sql.SQL(_size_bound("d")), pick=pick)
    params.update(_size_params(max_bytes))
    fence_plans(conn)
    return [
        PlanGroup(
            consumer=r["consumer"],
            status=Status(r["status"]),
            source_topic=r["source_topic"],
            count=r["n"],
            newest=r["newest"],
            maybe_oversize=r["big"],
        )
        for r in conn.execute(query, params)
    ]


_OVERSIZE = """
SELECT sel.dlq_id::text, sel.failed_at, true, {columns}
FROM ({pick}) AS sel JOIN dlq d ON d.ctid = sel.row_ctid
WHERE {size} > %(max_bytes)s
ORDER BY sel.failed_at, sel.dlq_id
LIMIT %(at_most)s
"""


def oversize_candidates(
    conn: Connection, selection: Selection, *, limit: int | None, max_bytes: int, at_most: int
) -> list[tuple[Any, ...]]:
    """Rows (as a claim returns them) whose message may exceed ``max_bytes``, in order."""
    pick, params = _pick(selection, _PICK_COLUMNS, limit)
    query = sql.SQL(_OVERSIZE).format(
        columns=sql.SQL(_MESSAGE_COLUMNS.format(t="d")),
        pick=pick,
        size=sql.SQL(_size_bound("d")),
    )
    params.update(_size_params(max_bytes), at_most=at_most)
    fence_plans(conn)
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchall()


# More than one range: pick (at most a batch from each range, merged), then lock the picked
# rows by ctid (a TID scan: no other condition an index could serve). A row another run
# changed since the snapshot has a new ctid, so the lock's recheck leaves it out. Returns the
# claimed rows, then the last picked row again with ``claimed`` false (where the next batch
# starts, also when every picked row was held by another run). No join of the two: its
# planner's choice could be a nested loop over both.
_CLAIM_PICKED = """
WITH picked AS MATERIALIZED ({pick}),
claimed AS MATERIALIZED (
    SELECT d.dlq_id, d.failed_at, {columns} FROM dlq d
    WHERE d.ctid = ANY(ARRAY(SELECT row_ctid FROM picked))
    FOR UPDATE OF d SKIP LOCKED
)
SELECT c.dlq_id::text COLLATE "C" AS id_text, c.failed_at, true AS claimed, {claimed}
FROM claimed c
UNION ALL
SELECT * FROM (
    SELECT p.dlq_id::text COLLATE "C", p.failed_at, false, {nothing}
    FROM picked p
    ORDER BY p.failed_at DESC, p.dlq_id DESC
    LIMIT 1
) AS last
ORDER BY failed_at, id_text, claimed DESC
"""

# The claimed columns' types, for the row that only carries the cursor.
_NO_MESSAGE = (
    "NULL::varchar, NULL::text, NULL::integer, NULL::text, NULL::bytea, NULL::jsonb,"
    " NULL::bytea, NULL::text, NULL::bytea, NULL::jsonb"
)

# One range: lock while walking it (skipped rows do not count towards the batch). The id's
# text is not called dlq_id: ORDER BY dlq_id would sort by it.
_CLAIM_RANGE = """
SELECT dlq.dlq_id::text AS id_text, dlq.failed_at, true, {columns} FROM dlq
WHERE {match} AND {keyset}{rows}
ORDER BY {order}
LIMIT %(walk_limit)s
FOR UPDATE SKIP LOCKED
"""


def claim_sql(selection: Selection) -> tuple[sql.Composed, dict[str, Any]]:
    """The claim of one batch and its fixed parameters (``claim_batch`` adds the bound and
    the size).

    One status and at most one consumer: a plain ``FOR UPDATE SKIP LOCKED`` walk of the
    matching range; the lock's recheck of the conditions drops an entry another run
    changed meanwhile. Otherwise the rows are picked from every range, then locked by
    ctid with SKIP LOCKED (a row changed since the snapshot has a new ctid and is left
    out); the locked rows come back, then the last picked row with ``claimed`` false (the
    cursor).
    """
    if _walks_one_index(selection):
        return _range_claim_sql(selection)
    pick, params = _pick(selection, _PICK_COLUMNS, 0)
    query = sql.SQL(_CLAIM_PICKED).format(
        pick=pick,
        columns=sql.SQL(_MESSAGE_COLUMNS.format(t="d")),
        claimed=sql.SQL(_CLAIMED_COLUMNS),
        nothing=sql.SQL(_NO_MESSAGE),
    )
    return query, params


def _walks_one_index(selection: Selection) -> bool:
    return (
        len(selection.statuses) == 1
        and len(selection.entry_filter.consumers) <= 1
        and not is_fenced(selection.entry_filter, selection.ids)
    )


def _range_claim_sql(selection: Selection) -> tuple[sql.Composed, dict[str, Any]]:
    (index_range,) = index_ranges(selection.eligible, [Status(selection.statuses[0])])
    params: dict[str, Any] = {}
    match, order = range_match(index_range, 0, params, newest_first=False)
    # The window's start is in the bound (claim_batch); its end is a condition.
    rows = build_filter(
        selection.eligible, include_consumers=False, include_statuses=False, since=False
    )
    guard = selection.guard()
    rows.conditions.extend(guard.conditions)
    query = sql.SQL(_CLAIM_RANGE).format(
        columns=sql.SQL(_MESSAGE_COLUMNS.format(t="dlq")),
        match=match,
        keyset=keyset_condition(newest_first=False),
        rows=rows.and_(),
        order=order,
    )
    start = bound_params(first_bound(selection.eligible, newest_first=False))
    return query, {**params, **rows.params, **guard.params, **start}


def claim_batch(
    conn: Connection,
    query: sql.Composed,
    params: dict[str, Any],
    cursor: tuple[datetime, str],
    size: int,
) -> Batch:
    """Lock the next ``size`` entries after ``cursor`` (in the transaction it opens).

    ``params`` (from ``claim_sql``) start at the window's edge; the walk continues after
    ``cursor`` or from there, whichever is later.
    """
    bound = max((params["walk_at"], params["walk_id"]), (cursor[0], UUID(cursor[1])))
    params = {**params, **bound_params(bound), "walk_limit": size}
    fence_plans(conn)
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return Batch(rows=rows, cursor=(rows[-1][FAILED_AT], rows[-1][ID]) if rows else cursor)


# clock_timestamp(), not now(): the moment of the mark, which other runs compare with the
# moment they started (Selection.guard; a mark still uncommitted when a run starts is
# recognised by its transaction id instead).
_MARK = """
UPDATE dlq SET status = 'replayed', retry_count = retry_count + 1,
       status_changed_at = clock_timestamp(),
       status_changed_by = %(actor)s, status_reason = NULL
WHERE dlq_id = ANY(%(ids)s::uuid[])
"""


def mark_replayed(conn: Connection, ids: Sequence[str], actor: str) -> int:
    """Mark the delivered entries of this transaction's batch replayed."""
    return conn.execute(_MARK, {"ids": list(ids), "actor": actor}).rowcount


# --- plans: the selection read without locks, and plan entries claimed by id ----------------

# A row of a plan: a claimed row's columns, then the entry's status.
STATUS = 13

_PLAN_COLUMNS = "{columns}, {t}.status"


_ONE_SNAPSHOT = """
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY
"""


def one_snapshot(conn: Connection) -> None:
    """Every statement of the transaction that starts now sees the same snapshot."""
    conn.rollback()
    conn.execute(_ONE_SNAPSHOT)


_PLAN_ROWS = """
SELECT sel.dlq_id::text, sel.failed_at, true, {columns}
FROM ({pick}) AS sel JOIN dlq d ON d.ctid = sel.row_ctid
ORDER BY sel.failed_at, sel.dlq_id
"""


def plan_rows(
    conn: Connection, selection: Selection, cursor: tuple[datetime, str], size: int
) -> list[tuple[Any, ...]]:
    """The next ``size`` entries of the selection after ``cursor``, as a plan records them
    (no locks: a dry run changes nothing and waits for no one)."""
    pick, params = _pick(selection, _PICK_COLUMNS, size)
    query = sql.SQL(_PLAN_ROWS).format(
        columns=sql.SQL(_PLAN_COLUMNS.format(columns=_MESSAGE_COLUMNS.format(t="d"), t="d")),
        pick=pick,
    )
    bound = max((params["walk_at"], params["walk_id"]), (cursor[0], UUID(cursor[1])))
    params.update(bound_params(bound))
    fence_plans(conn)
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchall()


# Plan entries by primary key (``dlq_pkey``), in any order: the caller puts them in plan
# order. The claim skips rows another run holds; ``_ROWS_BY_IDS`` is the look of a review.
_CLAIM_BY_IDS = """
SELECT dlq.dlq_id::text, dlq.failed_at, true, {columns}
FROM dlq
WHERE dlq.dlq_id = ANY(%(ids)s::uuid[])
FOR UPDATE SKIP LOCKED
"""

_ROWS_BY_IDS = """
SELECT dlq.dlq_id::text, dlq.failed_at, true, {columns}
FROM dlq
WHERE dlq.dlq_id = ANY(%(ids)s::uuid[])
"""


def _by_ids(conn: Connection, template: str, ids: Sequence[UUID]) -> dict[str, tuple[Any, ...]]:
    columns = _PLAN_COLUMNS.format(columns=_MESSAGE_COLUMNS.format(t="dlq"), t="dlq")
    query = sql.SQL(template).format(columns=sql.SQL(columns))
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(query, {"ids": list(ids)}).fetchall()
    return {row[ID]: row for row in rows}


def claim_by_ids(conn: Connection, ids: Sequence[UUID]) -> dict[str, tuple[Any, ...]]:
    """Lock the entries with these ids that no other run holds (in the open transaction);
    their rows (with ``STATUS``) by id text."""
    return _by_ids(conn, _CLAIM_BY_IDS, ids)


def rows_by_ids(conn: Connection, ids: Sequence[UUID]) -> dict[str, tuple[Any, ...]]:
    """The entries with these ids as they are now (no locks), by id text."""
    return _by_ids(conn, _ROWS_BY_IDS, ids)


# The quick look before a plan run: status and retry_count only (no payloads).
_STATES_BY_IDS = """
SELECT dlq_id::text AS id, status, retry_count FROM dlq WHERE dlq_id = ANY(%(ids)s::uuid[])
"""


def states_by_ids(conn: Connection, ids: Sequence[UUID]) -> dict[str, tuple[Status, int]]:
    """(status, retry_count) of the entries with these ids, by id text."""
    rows = conn.execute(_STATES_BY_IDS, {"ids": list(ids)})
    return {r["id"]: (Status(r["status"]), r["retry_count"]) for r in rows}


_EXISTING_IDS = """
SELECT dlq_id FROM dlq WHERE dlq_id = ANY(%(ids)s::uuid[])
"""


def existing_ids(conn: Connection, ids: Sequence[UUID]) -> set[UUID]:
    """Which of these ids are in the table (held by another run or not)."""
    return {r["dlq_id"] for r in conn.execute(_EXISTING_IDS, {"ids": list(ids)})}


# --- canary: re-failures of the canary entries ----------------------------------------------

# Entries of the canary's events (``idx_dlq_event_id``): before the canary is sent, and again
# after the wait; a new one of the same consumer is a re-failure stored by another writer.
_SAME_EVENTS = """
SELECT dlq_id, consumer, event_id FROM dlq WHERE event_id = ANY(%(event_ids)s::uuid[])
"""


def entries_of_events(conn: Connection, event_ids: Sequence[UUID]) -> list[tuple[UUID, str, UUID]]:
    """(dlq_id, consumer, event_id) of every entry of these events."""
    rows = conn.execute(_SAME_EVENTS, {"event_ids": list(event_ids)})
    return [(r["dlq_id"], r["consumer"], r["event_id"]) for r in rows]


# Attempts recorded for the canary entries (``uq_dlq_attempts_source_message`` by dlq_id).
_ATTEMPTS = """
SELECT dlq_id, attempt FROM dlq_attempts WHERE dlq_id = ANY(%(ids)s::uuid[])
"""


def attempts_of(conn: Connection, ids: Sequence[UUID]) -> list[tuple[UUID, int]]:
    """(dlq_id, attempt) of every recorded re-failure of these entries."""
    return [(r["dlq_id"], r["attempt"]) for r in conn.execute(_ATTEMPTS, {"ids": list(ids)})]
