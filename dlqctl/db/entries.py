"""Queries on ``dlq`` shared by several commands: resolving ids and counting matches.

An id prefix is a range of the primary key (``ORDER BY dlq_id``: only that index delivers
it); counts read the matching rows through ``filters.walk`` (exactly those rows, fenced);
explicit ids are looked up by primary key before any other condition applies. See
docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import sql

from dlqctl.core.errors import AmbiguousIdError, NotFoundError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import IdSelector
from dlqctl.core.models import MatchCount, Status
from dlqctl.db.connection import Connection
from dlqctl.db.filters import fence_plans, walk

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


def count_matches_query(
    entry_filter: EntryFilter, ids: Sequence[UUID] | None = None
) -> tuple[sql.Composed, dict[str, Any]]:
    """The query and parameters of ``count_matches`` (run it after ``fence_plans``)."""
    source = walk(entry_filter, ("consumer", "status"), ids=ids)
    return sql.SQL(_COUNT_MATCHES).format(walk=source.source), source.params


def count_matches(
    conn: Connection, entry_filter: EntryFilter, ids: Sequence[UUID] | None = None
) -> list[MatchCount]:
    """Matches per consumer and status (what a confirmation prompt shows)."""
    query, params = count_matches_query(entry_filter, ids)
    with conn.transaction():
        fence_plans(conn)
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
