"""Queries on ``dlq`` shared by several commands: resolving ids and counting matches."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from psycopg import sql

from dlqctl.core.errors import AmbiguousIdError, NotFoundError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import IdSelector
from dlqctl.core.models import MatchCount, Status
from dlqctl.db.connection import Connection
from dlqctl.db.filters import build_filter

MAX_CANDIDATES = 5


def resolve_ids(conn: Connection, selectors: Sequence[IdSelector]) -> list[UUID]:
    """The one id each selector names; NotFoundError (exit 3) or AmbiguousIdError (exit 2)."""
    resolved: list[UUID] = []
    for selector in selectors:
        rows = conn.execute(
            "SELECT dlq_id FROM dlq WHERE dlq_id BETWEEN %(low)s AND %(high)s"
            " ORDER BY dlq_id LIMIT %(limit)s",
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


def count_matches(
    conn: Connection, entry_filter: EntryFilter, ids: Sequence[UUID] | None = None
) -> list[MatchCount]:
    """Matches per consumer and status (what a confirmation prompt shows)."""
    where = build_filter(entry_filter, ids=ids)
    query = sql.SQL(
        "SELECT consumer, status, count(*) AS n FROM dlq {} GROUP BY consumer, status"
        " ORDER BY consumer, status"
    ).format(where.where())
    return [
        MatchCount(consumer=r["consumer"], status=Status(r["status"]), count=r["n"])
        for r in conn.execute(query, where.params)
    ]


def split_explicit_ids(
    conn: Connection,
    ids: Sequence[UUID],
    entry_filter: EntryFilter,
    eligible_statuses: Sequence[Status],
) -> tuple[list[UUID], list[UUID]]:
    """Resolved explicit ids split into (eligible, ineligible).

    Eligible: selected by the other filters and in one of ``eligible_statuses``.
    Ineligible (SPEC §4): ids that exist but are not eligible — another status, or
    excluded by the filters given with them.
    """
    if not ids:
        return [], []
    where = build_filter(entry_filter.with_statuses(tuple(eligible_statuses)), ids=ids)
    query = sql.SQL("SELECT dlq_id FROM dlq {}").format(where.where())
    eligible = {r["dlq_id"] for r in conn.execute(query, where.params)}
    return [i for i in ids if i in eligible], [i for i in ids if i not in eligible]
