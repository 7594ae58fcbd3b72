"""Reading entries for list, show and stats: keyset pages, streams and aggregates.

Newest first means ``ORDER BY failed_at DESC, dlq_id DESC``. Every page, stream and
filtered aggregate reads its rows through ``filters.walk``: one range of
``idx_dlq_consumer_status_failed`` per (consumer, status) pair, or one range of
``idx_dlq_status_failed`` per status, each the only plan without a sort (the transaction's
plans are fenced by ``filters.fence_plans``). A page reads at most ``limit`` rows per range
and starts at its cursor; a stream and a filtered aggregate read exactly the matching rows.
``--event-id`` goes through ``idx_dlq_event_id``, ``show`` and id prefixes through the
primary key. Only ``stats`` without any filter reads the whole table (a sequential scan).
See docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import tuple_row

from dlqctl.core.cursor import Position
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Attempt, DlqEntry, Status
from dlqctl.db.connection import Connection
from dlqctl.db.filters import (
    SqlFilter,
    Walk,
    bound_after,
    bound_params,
    build_filter,
    fence_plans,
    walk,
)

# The columns of an entry as `list -o json` prints it, then what `list --payload` adds, then
# what only `show` prints (docs/consumer.md, "What an entry holds", says what each holds).
ENTRY_COLUMNS = (
    "dlq_id",
    "consumer",
    "event_id",
    "status",
    "retry_count",
    "failed_at",
    "error_message",
)
PAYLOAD_COLUMNS = (
    "event_payload",
    "source_topic",
    "source_partition",
    "source_offset",
    "event_key",
    "event_headers",
    "status_changed_at",
    "status_reason",
)
SHOW_COLUMNS = (
    "event_raw",
    "status_changed_by",
    "error_fingerprint",
    "edited_raw",
    "edited_headers",
    "edited_at",
    "edited_by",
)
# Whether replay sends an edited version: the one thing of the edit that list reads.
IS_EDITED = "is_edited"
_IS_EDITED = sql.SQL("(edited_raw IS NOT NULL OR edited_headers IS NOT NULL) AS is_edited")

STREAM_BATCH = 2000


_STATUSES = {s.value: s for s in Status}


def _entry(row: tuple[Any, ...]) -> DlqEntry:
    """An entry from a row of ENTRY_COLUMNS and IS_EDITED (the hot path of ``list --all``)."""
    dlq_id, consumer, event_id, status, retry_count, failed_at, error_message, edited = row
    return DlqEntry(
        dlq_id,
        consumer,
        event_id,
        _STATUSES[status],
        retry_count,
        failed_at,
        error_message,
        is_edited=edited,
    )


def _columns(names: Sequence[str], table: str | None = None) -> sql.Composable:
    if table is None:
        return sql.SQL(", ").join(sql.Identifier(n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(table, n) for n in names)


def _list_columns(payload: bool) -> tuple[str, ...]:
    """What a walk of list reads: the entry's columns (and the payload's), and whether the
    entry is edited (computed in each branch: the edited bytes never leave it)."""
    return (*ENTRY_COLUMNS, *(PAYLOAD_COLUMNS if payload else ()), IS_EDITED)


def _walked(columns: Sequence[str]) -> list[str | sql.Composable]:
    return [_IS_EDITED if c == IS_EDITED else c for c in columns]


@dataclass(frozen=True)
class RetryScope:
    """``--failed-again`` / ``--min-retries`` as the queries apply them: ``ids``, the entries
    that failed again after a replay (``attempted_ids``; None: no such filter), read through
    the primary key like explicit ids; ``min_retries``, a condition on each walked row."""

    ids: Sequence[UUID] | None = None
    min_retries: int | None = None

    def __bool__(self) -> bool:
        return self.ids is not None or self.min_retries is not None

    def conditions(self) -> SqlFilter:
        extra = SqlFilter()
        if self.min_retries is not None:
            extra.add("retry_count >= %(min_retries)s", min_retries=self.min_retries)
        return extra


NO_SCOPE = RetryScope()

# Every entry with a recorded later failure: one pass over dlq_attempts (its rows only: a scan
# of the table or of uq_dlq_attempts_source_message, which starts with dlq_id).
_ATTEMPTED_IDS = """
SELECT DISTINCT dlq_id FROM dlq_attempts
"""


def attempted_ids(conn: Connection) -> list[UUID]:
    """The ids of the entries that failed again after a replay."""
    return [r["dlq_id"] for r in conn.execute(_ATTEMPTED_IDS)]


def _scoped_walk(
    entry_filter: EntryFilter,
    columns: Sequence[str | sql.Composable],
    scope: RetryScope,
    *,
    limit: bool = False,
) -> Walk:
    return walk(entry_filter, columns, ids=scope.ids, extra=scope.conditions(), limit=limit)


def _selective(entry_filter: EntryFilter, scope: RetryScope = NO_SCOPE) -> bool:
    """Whether the filter selects index ranges or ids (else an aggregate reads the whole
    table)."""
    return bool(
        entry_filter.consumers
        or entry_filter.statuses
        or entry_filter.since is not None
        or entry_filter.until is not None
        or entry_filter.event_id is not None
        or scope.ids is not None
    )


def _everything(entry_filter: EntryFilter, scope: RetryScope) -> bool:
    return entry_filter == EntryFilter() and not scope


_PAGE = """
SELECT {columns} FROM {walk} AS w
ORDER BY w.failed_at DESC, w.dlq_id DESC
LIMIT %(walk_limit)s
"""


def page_query(
    entry_filter: EntryFilter,
    *,
    limit: int,
    after: Position | None = None,
    payload: bool = False,
    scope: RetryScope = NO_SCOPE,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``fetch_page`` (the benchmark EXPLAINs it; run it after
    ``fence_plans``)."""
    columns = _list_columns(payload)
    source = _scoped_walk(entry_filter, _walked(columns), scope, limit=True)
    bound = bound_after(
        entry_filter, None if after is None else (after.failed_at, after.dlq_id), newest_first=True
    )
    params = {**source.params, **bound_params(bound), "walk_limit": limit}
    query = sql.SQL(_PAGE).format(columns=_columns(columns, "w"), walk=source.source)
    return query, params


def fetch_page(
    conn: Connection,
    entry_filter: EntryFilter,
    *,
    limit: int,
    after: Position | None = None,
    payload: bool = False,
    scope: RetryScope = NO_SCOPE,
) -> list[DlqEntry]:
    """Up to ``limit`` matching entries that come after ``after``, newest first."""
    query, params = page_query(entry_filter, limit=limit, after=after, payload=payload, scope=scope)
    fence_plans(conn)
    if payload:
        return [DlqEntry.from_row(row) for row in conn.execute(query, params)]
    with conn.cursor(row_factory=tuple_row) as cursor:
        return [_entry(row) for row in cursor.execute(query, params)]


_STREAM = """
SELECT {columns} FROM {walk} AS w
ORDER BY w.failed_at DESC, w.dlq_id DESC
"""


def stream_query(
    entry_filter: EntryFilter,
    *,
    after: Position | None = None,
    payload: bool = False,
    scope: RetryScope = NO_SCOPE,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``stream_entries`` (run it after ``fence_plans``)."""
    columns = _list_columns(payload)
    source = _scoped_walk(entry_filter, _walked(columns), scope)
    bound = bound_after(
        entry_filter, None if after is None else (after.failed_at, after.dlq_id), newest_first=True
    )
    query = sql.SQL(_STREAM).format(columns=_columns(columns, "w"), walk=source.source)
    return query, {**source.params, **bound_params(bound)}


def stream_entries(
    conn: Connection,
    entry_filter: EntryFilter,
    *,
    after: Position | None = None,
    payload: bool = False,
    batch: int = STREAM_BATCH,
    scope: RetryScope = NO_SCOPE,
) -> Iterator[DlqEntry]:
    """Every matching entry after ``after``, newest first, through a server-side cursor.

    Memory stays flat: the client holds one batch at a time. Every row will be read, so
    the planner is told to optimise for the whole result, not for the first rows.
    """
    query, params = stream_query(entry_filter, after=after, payload=payload, scope=scope)
    with conn.transaction():
        conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        fence_plans(conn)
        if payload:
            with conn.cursor(name="dlqctl_list_all") as cursor:
                cursor.itersize = batch
                cursor.execute(query, params)
                for row in cursor:
                    yield DlqEntry.from_row(row)
            return
        with conn.cursor(name="dlqctl_list_all", row_factory=tuple_row) as plain:
            plain.itersize = batch
            plain.execute(query, params)
            for values in plain:
                yield _entry(values)


_ENTRY = """
SELECT {columns},
       CASE WHEN event_raw IS NULL THEN event_payload::text END AS payload_text
FROM dlq
WHERE dlq_id = %(dlq_id)s
"""

# Oldest first; uq_dlq_attempts_source_message starts with dlq_id (a handful of rows each).
_ATTEMPTS = """
SELECT attempt, failed_at, error_message, source_topic, source_partition, source_offset
FROM dlq_attempts
WHERE dlq_id = %(dlq_id)s
ORDER BY failed_at, id
"""


def fetch_entry(conn: Connection, dlq_id: UUID) -> DlqEntry | None:
    """Every column of one entry, and its attempts."""
    query = sql.SQL(_ENTRY).format(columns=_columns(ENTRY_COLUMNS + PAYLOAD_COLUMNS + SHOW_COLUMNS))
    row = conn.execute(query, {"dlq_id": dlq_id}).fetchone()
    if row is None:
        return None
    attempts = tuple(Attempt(**r) for r in conn.execute(_ATTEMPTS, {"dlq_id": dlq_id}))
    return DlqEntry.from_row({**row, "attempts": attempts})


@dataclass(frozen=True)
class GroupCount:
    """Matching entries of one consumer, status and error fingerprint, and one message."""

    consumer: str
    status: Status
    fingerprint: str
    count: int
    example: str


@dataclass(frozen=True)
class StatsRows:
    """What ``stats`` adds up: the groups, and the oldest pending entry per consumer."""

    groups: list[GroupCount]
    oldest_pending: dict[str, datetime]


# Filtered: one pass over the matching rows (a walk), grouped by the stored fingerprint, else
# by the same function in SQL (migrations/0006): rows other writers stored group with
# dlqctl's own.
_WALKED_GROUPS = """
SELECT consumer, status,
       coalesce(error_fingerprint, dlqctl_error_fingerprint(error_message)) AS fingerprint,
       count(*) AS n, min(error_message) AS example,
       min(failed_at) FILTER (WHERE status = 'pending') AS oldest_pending
FROM {source}
GROUP BY 1, 2, 3
"""

# Everything: stored fingerprints by an index-only scan of idx_dlq_error_groups (its order,
# fenced, is the only plan), and the rows without one (not backfilled yet) from the NULL end
# of the same index, grouped by the SQL function. Examples and oldest entries: one probe each.
_ALL_GROUPS = """
SELECT consumer, status, error_fingerprint AS fingerprint, count(*) AS n, NULL AS example
FROM (
    SELECT error_fingerprint, consumer, status FROM dlq
    WHERE error_fingerprint IS NOT NULL
    ORDER BY error_fingerprint, consumer, status
) AS stored
GROUP BY error_fingerprint, consumer, status
UNION ALL
SELECT consumer, status, dlqctl_error_fingerprint(error_message), count(*), min(error_message)
FROM (
    SELECT consumer, status, error_message FROM dlq
    WHERE error_fingerprint IS NULL
    ORDER BY error_fingerprint, consumer, status
) AS unstored
GROUP BY 1, 2, 3
"""

# The first entry of each stored fingerprint in idx_dlq_error_groups (= ANY keeps the
# fingerprint in the ORDER BY, an order only that index delivers).
_EXAMPLES = """
SELECT f.fingerprint, e.error_message AS example
FROM unnest(%(fingerprints)s::text[]) AS f(fingerprint)
CROSS JOIN LATERAL (
    SELECT error_message FROM dlq
    WHERE error_fingerprint = ANY(ARRAY[f.fingerprint])
    ORDER BY error_fingerprint
    LIMIT 1
) AS e
"""

# The oldest pending entry of each consumer: the far end of its range of
# idx_dlq_consumer_status_failed (see filters.walk for the = ANY).
_OLDEST_PENDING = """
SELECT k.consumer, o.failed_at
FROM unnest(%(consumers)s::text[]) AS k(consumer)
CROSS JOIN LATERAL (
    SELECT failed_at FROM dlq
    WHERE consumer = ANY(ARRAY[k.consumer]) AND status = 'pending'
    ORDER BY consumer DESC, failed_at, dlq_id
    LIMIT 1
) AS o
"""


def _walked_source(
    entry_filter: EntryFilter, columns: Sequence[str], scope: RetryScope = NO_SCOPE
) -> tuple[sql.Composable, dict[str, Any]]:
    """Where a filtered aggregate reads the matching rows: a walk, or (only --error or
    --min-retries) the whole table."""
    if _selective(entry_filter, scope):
        source = _scoped_walk(entry_filter, columns, scope)
        return source.source + sql.SQL(" AS w"), source.params
    where = build_filter(entry_filter)
    extra = scope.conditions()
    where.conditions.extend(extra.conditions)
    return sql.SQL("dlq {}").format(where.where()), {**where.params, **extra.params}


def stats_query(
    entry_filter: EntryFilter, scope: RetryScope = NO_SCOPE
) -> tuple[sql.SQL | sql.Composed, dict[str, Any]]:
    """The grouping query of ``stats_rows`` and its parameters (run it after
    ``fence_plans``)."""
    if _everything(entry_filter, scope):
        return sql.SQL(_ALL_GROUPS), {}
    columns = ("consumer", "status", "error_fingerprint", "error_message", "failed_at")
    source, params = _walked_source(entry_filter, columns, scope)
    return sql.SQL(_WALKED_GROUPS).format(source=source), params


def stats_rows(
    conn: Connection, entry_filter: EntryFilter, scope: RetryScope = NO_SCOPE
) -> StatsRows:
    """Counts by consumer, status and error fingerprint, an example message of each group,
    and the oldest pending entry of each consumer."""
    query, params = stats_query(entry_filter, scope)
    fence_plans(conn)
    rows = conn.execute(query, params).fetchall()
    oldest: dict[str, datetime] = {}
    if _everything(entry_filter, scope):
        missing = sorted({r["fingerprint"] for r in rows if r["example"] is None})
        examples = {
            r["fingerprint"]: r["example"]
            for r in conn.execute(_EXAMPLES, {"fingerprints": missing})
        }
        pending = sorted({r["consumer"] for r in rows if r["status"] == Status.PENDING})
        for r in conn.execute(_OLDEST_PENDING, {"consumers": pending}):
            oldest[r["consumer"]] = r["failed_at"]
    else:
        examples = {}
        for r in rows:
            if r["oldest_pending"] is not None:
                known = oldest.get(r["consumer"])
                if known is None or r["oldest_pending"] < known:
                    oldest[r["consumer"]] = r["oldest_pending"]
    groups = [
        GroupCount(
            consumer=r["consumer"],
            status=Status(r["status"]),
            fingerprint=r["fingerprint"],
            count=r["n"],
            example=r["example"] if r["example"] is not None else examples[r["fingerprint"]],
        )
        for r in rows
    ]
    return StatsRows(groups=groups, oldest_pending=oldest)


# Later failures per consumer, driven from dlq_attempts (only entries that failed again have
# rows there): each attempt finds its entry by primary key in a subplan (a scalar subquery is
# never turned into a join, so no plan reads dlq beyond those rows) and keeps it when it
# matches the filter. Attempts whose entry is gone (TRUNCATE dlq) have no consumer.
_REFAILURES = """
SELECT consumer, count(*) AS entries, sum(n) AS attempts
FROM (
    SELECT consumer, dlq_id, count(*) AS n
    FROM (
        SELECT a.dlq_id,
               (SELECT consumer FROM dlq WHERE dlq_id = a.dlq_id {conditions}) AS consumer
        FROM dlq_attempts AS a
    ) AS matched
    WHERE consumer IS NOT NULL
    GROUP BY consumer, dlq_id
) AS per_entry
GROUP BY consumer
"""


def refailures_query(
    entry_filter: EntryFilter, scope: RetryScope = NO_SCOPE
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``refailures`` (run it after ``fence_plans``)."""
    where = build_filter(entry_filter)
    extra = scope.conditions()
    where.conditions.extend(extra.conditions)
    query = sql.SQL(_REFAILURES).format(conditions=where.and_())
    return query, {**where.params, **extra.params}


def refailures(
    conn: Connection, entry_filter: EntryFilter, scope: RetryScope = NO_SCOPE
) -> dict[str, tuple[int, int]]:
    """Per consumer: (entries that failed again, attempts recorded) of the matching entries."""
    query, params = refailures_query(entry_filter, scope)
    fence_plans(conn)
    return {r["consumer"]: (r["entries"], int(r["attempts"])) for r in conn.execute(query, params)}


_RETRY_COUNTS = """
SELECT retry_count, count(*) AS n
FROM {source}
GROUP BY 1
"""


def retry_counts_query(
    entry_filter: EntryFilter, scope: RetryScope = NO_SCOPE
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``retry_counts`` (run it after ``fence_plans``): no index
    holds retry_count, so without a filter it reads the whole table."""
    if _everything(entry_filter, scope):
        return sql.SQL(_RETRY_COUNTS).format(source=sql.SQL("dlq")), {}
    source, params = _walked_source(entry_filter, ("retry_count",), scope)
    return sql.SQL(_RETRY_COUNTS).format(source=source), params


def retry_counts(
    conn: Connection, entry_filter: EntryFilter, scope: RetryScope = NO_SCOPE
) -> list[tuple[int, int]]:
    """(retry_count, matching entries) pairs, fewest retries first."""
    query, params = retry_counts_query(entry_filter, scope)
    fence_plans(conn)
    return sorted((r["retry_count"], r["n"]) for r in conn.execute(query, params))


_TIME_BUCKETS = """
SELECT date_trunc(%(bucket_unit)s, failed_at, 'UTC') AS bucket, count(*) AS n
FROM {source}
GROUP BY 1 ORDER BY 1
"""

# Everything: an index-only scan of idx_dlq_failed_at.
_ALL_FAILED_AT = "(SELECT failed_at FROM dlq ORDER BY failed_at) AS t"


def time_buckets_query(
    entry_filter: EntryFilter, unit: str, scope: RetryScope = NO_SCOPE
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``time_buckets`` (run it after ``fence_plans``)."""
    if _everything(entry_filter, scope):
        source: sql.Composable = sql.SQL(_ALL_FAILED_AT)
        params: dict[str, Any] = {}
    else:
        source, params = _walked_source(entry_filter, ("failed_at",), scope)
    query = sql.SQL(_TIME_BUCKETS).format(source=source)
    return query, {**params, "bucket_unit": unit}


def time_buckets(
    conn: Connection, entry_filter: EntryFilter, unit: str, scope: RetryScope = NO_SCOPE
) -> list[tuple[datetime, int]]:
    """(bucket start, count) of matching entries per ``unit`` ('hour' or 'day') in UTC."""
    query, params = time_buckets_query(entry_filter, unit, scope)
    fence_plans(conn)
    return [(r["bucket"], r["n"]) for r in conn.execute(query, params)]


def server_now(conn: Connection) -> datetime:
    """The server's clock (ages are measured against the clock that stamped failed_at)."""
    row = conn.execute("SELECT now() AS now").fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now
