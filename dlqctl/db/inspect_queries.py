"""Reading entries for list, show and stats: keyset pages, streams and aggregates.

Newest first means ``ORDER BY failed_at DESC, dlq_id DESC``. A page walks one range of
``idx_dlq_consumer_status_failed`` per (consumer, status) pair, or one range of
``idx_dlq_status_failed`` per status, each stopping after ``limit`` rows (a LATERAL), and
merges those few rows: every first page costs a handful of index probes, whether the
consumer is big or small and whether its failures are recent or old.
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
from dlqctl.core.models import DlqEntry, Status
from dlqctl.db.connection import Connection
from dlqctl.db.filters import SqlFilter, build_filter

# The SPEC §4 entry object's columns, then what `list --payload` adds, then what only
# `show` prints.
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
SHOW_COLUMNS = ("event_raw", "status_changed_by", "error_fingerprint")

STREAM_BATCH = 2000


_STATUSES = {s.value: s for s in Status}


def _entry(row: tuple[Any, ...]) -> DlqEntry:
    """An entry from a row of ENTRY_COLUMNS (the hot path of ``list --all``)."""
    dlq_id, consumer, event_id, status, retry_count, failed_at, error_message = row
    return DlqEntry(
        dlq_id, consumer, event_id, _STATUSES[status], retry_count, failed_at, error_message
    )


def _columns(names: Sequence[str], table: str | None = None) -> sql.Composable:
    if table is None:
        return sql.SQL(", ").join(sql.Identifier(n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(table, n) for n in names)


def _list_columns(payload: bool) -> tuple[str, ...]:
    return ENTRY_COLUMNS + PAYLOAD_COLUMNS if payload else ENTRY_COLUMNS


def _keyset(where: SqlFilter, after: Position | None) -> None:
    """Only entries that come after ``after`` in newest-first order."""
    if after is not None:
        where.add(
            "(failed_at, dlq_id) < (%(after_failed_at)s, %(after_dlq_id)s)",
            after_failed_at=after.failed_at,
            after_dlq_id=after.dlq_id,
        )


def page_query(
    entry_filter: EntryFilter,
    *,
    limit: int,
    after: Position | None = None,
    payload: bool = False,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``fetch_page`` (the benchmark EXPLAINs it)."""
    where = build_filter(entry_filter, include_consumers=False, include_statuses=False)
    _keyset(where, after)
    columns = _list_columns(payload)
    params: dict[str, Any] = {
        **where.params,
        "page_statuses": [s.value for s in entry_filter.effective_statuses],
        "page_limit": limit,
    }
    # The status check makes the set of statuses closed, so "all statuses" is three
    # index ranges too.
    if entry_filter.consumers:
        params["page_consumers"] = list(entry_filter.consumers)
        ranges = sql.SQL(
            "unnest(%(page_consumers)s::text[]) AS pc(name)"
            " CROSS JOIN unnest(%(page_statuses)s::text[]) AS ps(name)"
        )
        match = sql.SQL("consumer = pc.name AND status = ps.name")
    else:
        ranges = sql.SQL("unnest(%(page_statuses)s::text[]) AS ps(name)")
        match = sql.SQL("status = ps.name")
    query = sql.SQL(
        "SELECT {outer} FROM {ranges} CROSS JOIN LATERAL ("
        " SELECT {inner} FROM dlq WHERE {match}{filters}"
        " ORDER BY failed_at DESC, dlq_id DESC LIMIT %(page_limit)s) AS e"
        " ORDER BY e.failed_at DESC, e.dlq_id DESC LIMIT %(page_limit)s"
    ).format(
        outer=_columns(columns, "e"),
        ranges=ranges,
        inner=_columns(columns),
        match=match,
        filters=where.and_(),
    )
    return query, params


def fetch_page(
    conn: Connection,
    entry_filter: EntryFilter,
    *,
    limit: int,
    after: Position | None = None,
    payload: bool = False,
) -> list[DlqEntry]:
    """Up to ``limit`` matching entries that come after ``after``, newest first."""
    query, params = page_query(entry_filter, limit=limit, after=after, payload=payload)
    if payload:
        return [DlqEntry.from_row(row) for row in conn.execute(query, params)]
    with conn.cursor(row_factory=tuple_row) as cursor:
        return [_entry(row) for row in cursor.execute(query, params)]


def stream_query(
    entry_filter: EntryFilter, *, after: Position | None = None, payload: bool = False
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``stream_entries``."""
    where = build_filter(entry_filter)
    _keyset(where, after)
    query = sql.SQL("SELECT {} FROM dlq {} ORDER BY failed_at DESC, dlq_id DESC").format(
        _columns(_list_columns(payload)), where.where()
    )
    return query, where.params


def stream_entries(
    conn: Connection,
    entry_filter: EntryFilter,
    *,
    after: Position | None = None,
    payload: bool = False,
    batch: int = STREAM_BATCH,
) -> Iterator[DlqEntry]:
    """Every matching entry after ``after``, newest first, through a server-side cursor.

    Memory stays flat: the client holds one batch at a time. Every row will be read, so
    the planner is told to optimise for the whole result, not for the first rows.
    """
    query, params = stream_query(entry_filter, after=after, payload=payload)
    with conn.transaction():
        conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
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


def fetch_entry(conn: Connection, dlq_id: UUID) -> DlqEntry | None:
    """Every column of one entry."""
    query = sql.SQL("SELECT {} FROM dlq WHERE dlq_id = %(dlq_id)s").format(
        _columns(ENTRY_COLUMNS + PAYLOAD_COLUMNS + SHOW_COLUMNS)
    )
    row = conn.execute(query, {"dlq_id": dlq_id}).fetchone()
    return None if row is None else DlqEntry.from_row(row)


@dataclass(frozen=True)
class GroupCount:
    """Matching entries of one consumer, status and stored error fingerprint."""

    consumer: str
    status: Status
    fingerprint: str | None
    count: int
    example: str
    oldest_failed_at: datetime


def group_counts(conn: Connection, entry_filter: EntryFilter) -> list[GroupCount]:
    """Counts by consumer, status and stored fingerprint, in one pass over the matches.

    NULL fingerprints (rows other writers stored) come back as one group per consumer and
    status; ``unfingerprinted_messages`` breaks them down.
    """
    query, params = group_counts_query(entry_filter)
    return [
        GroupCount(
            consumer=r["consumer"],
            status=Status(r["status"]),
            fingerprint=r["error_fingerprint"],
            count=r["n"],
            example=r["example"],
            oldest_failed_at=r["oldest"],
        )
        for r in conn.execute(query, params)
    ]


def group_counts_query(entry_filter: EntryFilter) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``group_counts``."""
    where = build_filter(entry_filter)
    query = sql.SQL(
        "SELECT consumer, status, error_fingerprint, count(*) AS n,"
        " min(error_message) AS example, min(failed_at) AS oldest"
        " FROM dlq {} GROUP BY consumer, status, error_fingerprint"
    ).format(where.where())
    return query, where.params


def unfingerprinted_messages(
    conn: Connection, entry_filter: EntryFilter, *, batch: int = STREAM_BATCH
) -> Iterator[tuple[str, int]]:
    """(error_message, count) of matching entries without a stored fingerprint, streamed."""
    where = build_filter(entry_filter)
    where.add("error_fingerprint IS NULL")
    query = sql.SQL(
        "SELECT error_message, count(*) AS n FROM dlq {} GROUP BY error_message"
    ).format(where.where())
    with conn.transaction(), conn.cursor(name="dlqctl_stats_messages") as cursor:
        cursor.itersize = batch
        cursor.execute(query, where.params)
        for row in cursor:
            yield row["error_message"], row["n"]


def time_buckets(
    conn: Connection, entry_filter: EntryFilter, unit: str
) -> list[tuple[datetime, int]]:
    """(bucket start, count) of matching entries per ``unit`` ('hour' or 'day') in UTC."""
    where = build_filter(entry_filter)
    query = sql.SQL(
        "SELECT date_trunc(%(bucket_unit)s, failed_at, 'UTC') AS bucket, count(*) AS n"
        " FROM dlq {} GROUP BY 1 ORDER BY 1"
    ).format(where.where())
    rows = conn.execute(query, {**where.params, "bucket_unit": unit})
    return [(r["bucket"], r["n"]) for r in rows]


def server_now(conn: Connection) -> datetime:
    """The server's clock (ages are measured against the clock that stamped failed_at)."""
    row = conn.execute("SELECT now() AS now").fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now
