"""The one translation of an EntryFilter into parameterised SQL conditions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg import sql

from dlqctl.core.filters import EntryFilter


@dataclass
class SqlFilter:
    """SQL conditions (AND-ed) and their named parameters."""

    conditions: list[sql.Composable] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, condition: str, **params: Any) -> None:
        self.conditions.append(sql.SQL(condition))
        self.params.update(params)

    def where(self) -> sql.Composable:
        """``WHERE a AND b`` (``WHERE true`` when there is no condition)."""
        if not self.conditions:
            return sql.SQL("WHERE true")
        return sql.SQL("WHERE ") + sql.SQL(" AND ").join(self.conditions)

    def and_(self) -> sql.Composable:
        """`` AND a AND b`` to append to an existing WHERE (empty without conditions)."""
        if not self.conditions:
            return sql.SQL("")
        return sql.SQL(" AND ") + sql.SQL(" AND ").join(self.conditions)


def build_filter(
    entry_filter: EntryFilter,
    *,
    ids: Sequence[UUID] | None = None,
    include_consumers: bool = True,
    include_statuses: bool = True,
) -> SqlFilter:
    """Conditions for ``entry_filter`` on table ``dlq``.

    ``ids`` are the already resolved explicit ids (see ``resolve_ids``), if any were given.
    ``include_consumers`` / ``include_statuses`` leave those conditions out for queries that
    walk consumers or statuses themselves (a LATERAL over the index).
    """
    out = SqlFilter()
    if include_consumers and entry_filter.consumers:
        out.add("consumer = ANY(%(consumers)s::text[])", consumers=list(entry_filter.consumers))
    if include_statuses and entry_filter.statuses:
        out.add(
            "status = ANY(%(statuses)s::text[])",
            statuses=[s.value for s in entry_filter.statuses],
        )
    if entry_filter.since is not None:
        out.add("failed_at >= %(since)s", since=entry_filter.since)
    if entry_filter.until is not None:
        out.add("failed_at < %(until)s", until=entry_filter.until)
    if entry_filter.error is not None:
        # strpos, not LIKE: the text is a literal, so % _ and \ need no escaping.
        out.add("strpos(lower(error_message), lower(%(error)s)) > 0", error=entry_filter.error)
    if entry_filter.event_id is not None:
        out.add("event_id = %(event_id)s", event_id=entry_filter.event_id)
    if ids is not None:
        out.add("dlq_id = ANY(%(ids)s::uuid[])", ids=list(ids))
    return out
