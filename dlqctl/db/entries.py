"""Queries on ``dlq`` shared by several commands: resolving ids and counting matches.

An id prefix is a range of the primary key (``ORDER BY dlq_id``: only that index delivers
it); counts read the matching rows through ``filters.walk`` (exactly those rows, fenced;
without a consumer filter, per consumer found by a loose index scan, so that counting is
an index-only scan);
explicit ids are looked up by primary key before any other condition applies. See
docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from psycopg import sql

from dlqctl.core.errors import AmbiguousIdError, NotFoundError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import IdSelector
from dlqctl.core.models import MatchCount, Status
from dlqctl.db.connection import Connection
from dlqctl.db.filters import fence_plans, is_fenced, walk

MAX_CANDIDATES = 5


_RESOLVE = """
SELECT dlq_id FROM dlq
WHERE dlq_id BETWEEN %(low)s AND %(high)s
ORDER BY dlq_id
LIMIT %(limit)s
"""


def resolve_ids(conn: Connection, selectors: Sequence[IdSelector]) -> list[UUID]:
    """The one id each selector names; NotFoundError (exit 3) or AmbiguousIdError (exit 2)."""
    resolved: list[UUID] = []
    for selector in selectors:
        rows = conn.execute(
            _RESOLVE,
            {"low": selector.low, "high": selector.high, "limit": MAX_CANDIDATES + 1},
        ).fetchall()
        if not rows:
            raise NotFoundError(f"no entry with id {selector.text!r}")
        if len(rows) > 1:
            candidates = [str(r["dlq_id"]) for r in rows[:MAX_CANDIDATES]]
            if len(rows) > MAX_CANDIDATES:
                candidates.append("…")
            raise AmbiguousIdError(selector.text, candidates)
        if rows[0]["dlq_id"] not in resolved:
            resolved.append(rows[0]["dlq_id"])
    return resolved


_COUNT_MATCHES = """
SELECT consumer, status, count(*) AS n
FROM {walk} AS w
GROUP BY consumer, status
ORDER BY consumer, status
"""

_COUNT_RANGE = """
(SELECT ({consumer}::text[])[1] AS consumer, {status}::text AS status, count(*) AS n
 FROM {branch} AS b)
"""
_COUNT_RANGES = """
SELECT consumer, status, n FROM ({counts}) AS c
WHERE n > 0
ORDER BY consumer, status
"""

# Every consumer, one index probe each (a loose scan of an index that starts with consumer:
# ORDER BY consumer, fenced, only such an index delivers it).
_CONSUMERS = """
WITH RECURSIVE consumers AS (
    (SELECT consumer FROM dlq ORDER BY consumer LIMIT 1)
    UNION ALL
    SELECT (SELECT d.consumer FROM dlq d WHERE d.consumer > c.consumer
            ORDER BY d.consumer LIMIT 1)
    FROM consumers c
    WHERE c.consumer IS NOT NULL
)
SELECT consumer FROM consumers WHERE consumer IS NOT NULL
"""

# Counting by (consumer, status) ranges is an index-only scan of
# idx_dlq_consumer_status_failed; a status range would read every row for its consumer.
# Beyond this many consumers the statement would be too long to plan quickly.
MAX_COUNTED_CONSUMERS = 64


def count_matches_query(
    entry_filter: EntryFilter,
    ids: Sequence[UUID] | None = None,
    consumers: Sequence[str] = (),
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``count_matches`` (run it after ``fence_plans``);
    ``consumers``: every consumer, for a filter without one (see ``all_consumers``)."""
    if consumers and not entry_filter.consumers:
        entry_filter = replace(entry_filter, consumers=tuple(consumers))
    source = walk(entry_filter, ("consumer", "status"), ids=ids)
    if not source.ranges or any(r.consumer is None for r, _ in source.ranges):
        return sql.SQL(_COUNT_MATCHES).format(walk=source.source), source.params
    # One count per (consumer, status) range: no row goes further than its branch.
    counts = [
        sql.SQL(_COUNT_RANGE).format(
            consumer=sql.Placeholder(f"walk_consumer_{i}"),
            status=sql.Placeholder(f"walk_status_{i}"),
            branch=branch,
        )
        for i, (_, branch) in enumerate(source.ranges)
    ]
    query = sql.SQL(_COUNT_RANGES).format(counts=sql.SQL(" UNION ALL ").join(counts))
    return query, source.params


def all_consumers(conn: Connection) -> list[str]:
    """Every consumer in the table (run it after ``fence_plans``)."""
    return [r["consumer"] for r in conn.execute(_CONSUMERS)]


def count_matches(
    conn: Connection, entry_filter: EntryFilter, ids: Sequence[UUID] | None = None
) -> list[MatchCount]:
    """Matches per consumer and status (what a confirmation prompt shows)."""
    with conn.transaction():
        fence_plans(conn)
        consumers: list[str] = []
        if not entry_filter.consumers and not is_fenced(entry_filter, ids):
            consumers = all_consumers(conn)
            if len(consumers) > MAX_COUNTED_CONSUMERS:
                consumers = []
        query, params = count_matches_query(entry_filter, ids, consumers)
        rows = conn.execute(query, params).fetchall()
    return [MatchCount(r["consumer"], Status(r["status"]), r["n"]) for r in rows]


_ELIGIBLE = """
SELECT dlq_id FROM {walk} AS w
"""


def split_explicit_ids(
    conn: Connection,
    ids: Sequence[UUID],
    entry_filter: EntryFilter,
    eligible_statuses: Sequence[Status],
) -> tuple[list[UUID], list[UUID]]:
    """Resolved explicit ids split into (eligible, ineligible).

    Eligible: selected by the other filters and in one of ``eligible_statuses``.
    Ineligible: ids that exist but are not eligible — another status, or excluded by the
    filters given with them.
    """
    if not ids:
        return [], []
    source = walk(entry_filter, ("dlq_id",), statuses=eligible_statuses, ids=ids)
    query = sql.SQL(_ELIGIBLE).format(walk=source.source)
    eligible = {r["dlq_id"] for r in conn.execute(query, source.params)}
    return [i for i in ids if i in eligible], [i for i in ids if i not in eligible]
