"""The one translation of an EntryFilter into SQL: row conditions, and the index walks that
every selective statement reads its rows through (see docs/performance.md).

A walk is a UNION ALL of one branch per index range: per (consumer, status) pair a range of
``idx_dlq_consumer_status_failed``, or, without a consumer filter, per status a range of
``idx_dlq_status_failed``. Each branch is built so that its index is the only plan without
a sort, whatever the planner believes about the values:

- the consumer is matched with a one-element ``= ANY(array)`` and the status with ``=``:
  the branch's ORDER BY (consumer, failed_at, dlq_id) then keeps ``consumer`` (an ``=``
  would drop it as a constant), an order only ``idx_dlq_consumer_status_failed`` delivers;
  a status-only branch orders by (failed_at, dlq_id) under ``status =``, an order only
  ``idx_dlq_status_failed`` delivers (``idx_dlq_failed_at`` lacks the dlq_id tie-break);
- ``fence_plans`` makes every plan with a Sort or Incremental Sort node cost more than any
  plan without one (``enable_sort``/``enable_incremental_sort`` off) for the transaction,
  so neither "read the whole range, then sort" nor "walk idx_dlq_failed_at with a filter"
  can win on a wrong row estimate;
- the keyset and the window's edge on the walk's side are one row-value bound,
  ``(failed_at, dlq_id) < (…)`` (``>`` walking oldest first), which the index takes as its
  start: a deep page or a late batch starts where the previous one stopped.

Explicit ids and ``--event-id`` select a handful of rows through the primary key or
``idx_dlq_event_id`` instead: a ``MATERIALIZED`` CTE that holds only that condition (no
other index can serve it), the other conditions applied to its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import sql

from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status

MIN_ID = UUID(int=0)
MAX_ID = UUID(int=(1 << 128) - 1)
# Before and after every failed_at (timestamptz holds both; infinity does not fit datetime).
BEGINNING = datetime(1, 1, 1, tzinfo=UTC)
END = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# See the module docstring. SET LOCAL: for the current transaction only. No parallel plans
# either: a walk reads a few ranges, and before PostgreSQL 18 the cost a disabled sort adds
# (1e10) makes workers look worth starting for a page of 50 rows.
_FENCE_PLANS = (
    "SET LOCAL enable_sort = off; SET LOCAL enable_incremental_sort = off;"
    " SET LOCAL max_parallel_workers_per_gather = 0"
)

Bound = tuple[datetime, UUID]


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
    since: bool = True,
    until: bool = True,
) -> SqlFilter:
    """Conditions for ``entry_filter`` on table ``dlq``.

    ``ids`` are the already resolved explicit ids (see ``resolve_ids``), if any were given.
    ``include_consumers`` / ``include_statuses`` / ``since`` / ``until`` leave those
    conditions out for queries that walk index ranges themselves (see ``walk``).
    """
    out = SqlFilter()
    if include_consumers and entry_filter.consumers:
        out.add("consumer = ANY(%(consumers)s::text[])", consumers=list(entry_filter.consumers))
    if include_statuses and entry_filter.statuses:
        out.add(
            "status = ANY(%(statuses)s::text[])",
            statuses=[s.value for s in entry_filter.statuses],
        )
    if since and entry_filter.since is not None:
        out.add("failed_at >= %(since)s", since=entry_filter.since)
    if until and entry_filter.until is not None:
        out.add("failed_at < %(until)s", until=entry_filter.until)
    if entry_filter.error is not None:
        # strpos, not LIKE: the text is a literal, so % _ and \ need no escaping.
        out.add("strpos(lower(error_message), lower(%(error)s)) > 0", error=entry_filter.error)
    if entry_filter.event_id is not None:
        out.add("event_id = %(event_id)s", event_id=entry_filter.event_id)
    if ids is not None:
        out.add("dlq_id = ANY(%(ids)s::uuid[])", ids=list(ids))
    return out


def fence_plans(conn: Any) -> None:
    """For the rest of the open transaction, no plan with a sort is cheap (see above).

    Run it inside a transaction (a connection in autocommit mode needs
    ``with conn.transaction():``), before the walk statements.
    """
    conn.execute(_FENCE_PLANS)


def first_bound(entry_filter: EntryFilter, *, newest_first: bool) -> Bound:
    """Where a walk starts: the window's edge on its side, else the end of time.

    Exact: ``(failed_at, dlq_id) < (until, MIN_ID)`` is ``failed_at < until``, and
    ``(failed_at, dlq_id) > (since - 1 µs, MAX_ID)`` is ``failed_at >= since``.
    """
    if newest_first:
        return (entry_filter.until, MIN_ID) if entry_filter.until else (END, MIN_ID)
    if entry_filter.since is not None:
        return (entry_filter.since - _MICROSECOND, MAX_ID)
    return (BEGINNING, MAX_ID)


def bound_after(entry_filter: EntryFilter, position: Bound | None, *, newest_first: bool) -> Bound:
    """The bound of a walk that continues after ``position``: that, or the window's edge,
    whichever is stricter."""
    first = first_bound(entry_filter, newest_first=newest_first)
    if position is None:
        return first
    return min(first, position) if newest_first else max(first, position)


def bound_params(bound: Bound, prefix: str = "walk") -> dict[str, Any]:
    return {f"{prefix}_at": bound[0], f"{prefix}_id": bound[1]}


# The bound of a walk newest first / oldest first.
_KEYSET = {
    True: "(failed_at, dlq_id) < ({at}, {id}::uuid)",
    False: "(failed_at, dlq_id) > ({at}, {id}::uuid)",
}
# A status range orders by (failed_at, dlq_id); a (consumer, status) range also by consumer.
_ORDER = {True: "failed_at DESC, dlq_id DESC", False: "failed_at, dlq_id"}
_CONSUMER_ORDER = {
    True: "consumer, failed_at DESC, dlq_id DESC",
    False: "consumer DESC, failed_at, dlq_id",
}
_STATUS_MATCH = "status = {status}::text"
_RANGE_MATCH = "consumer = ANY({consumer}::text[]) AND status = {status}::text"

# One range of a walk.
_BRANCH = """
(SELECT {selected} FROM dlq
 WHERE {match} AND {keyset}{rows}
 ORDER BY {order}{stop})
"""

# A handful of rows by primary key or event id; the other conditions apply to those rows.
# xmin is passed on for replay's guard (db/replay_queries.py), which reads it on every walk.
_FENCED = """
(WITH picked AS MATERIALIZED (SELECT ctid AS row_ctid, xmin, * FROM dlq {picked})
 SELECT {selected} FROM picked
 WHERE {keyset}{matched}{rows}
 ORDER BY {order}{stop})
"""

# The column a walk names row_ctid: the row's ctid, to find it again (lock, update). Only
# where asked for: without it a walk of columns the index holds is an index-only scan.
ROW_CTID = "row_ctid"


def keyset_condition(newest_first: bool, prefix: str = "walk") -> sql.Composed:
    """Rows after the walk's bound ``%({prefix}_at)s`` / ``%({prefix}_id)s``."""
    return sql.SQL(_KEYSET[newest_first]).format(
        at=sql.Placeholder(prefix + "_at"), id=sql.Placeholder(prefix + "_id")
    )


@dataclass(frozen=True)
class IndexRange:
    """One range a walk reads: a consumer and a status, or (consumer None) a status."""

    consumer: str | None
    status: str


def index_ranges(entry_filter: EntryFilter, statuses: Sequence[Status]) -> list[IndexRange]:
    """The ranges of a filter's consumers × ``statuses`` (every consumer when none given)."""
    consumers: Sequence[str | None] = entry_filter.consumers or (None,)
    return [IndexRange(c, s.value) for c in consumers for s in statuses]


def is_fenced(entry_filter: EntryFilter, ids: Sequence[UUID] | None) -> bool:
    """Whether a walk reads through the primary key or idx_dlq_event_id (few rows)."""
    return ids is not None or entry_filter.event_id is not None


@dataclass(frozen=True)
class Walk:
    """A FROM item that yields the selection's rows, each branch in walk order.

    ``source`` is a parenthesised subquery (alias it) with the requested columns
    (``ROW_CTID``: the row's ctid). ``params`` start the walk at the window's edge
    (``first_bound``); a walk that continues overrides ``{prefix}_at`` / ``{prefix}_id``
    (``bound_params``). A limited walk also needs ``{prefix}_limit``.
    """

    source: sql.Composable
    params: dict[str, Any]
    branches: int
    # Each range and its branch (a walk by primary key or event id has none).
    ranges: tuple[tuple[IndexRange, sql.Composable], ...] = ()


def walk(
    entry_filter: EntryFilter,
    columns: Sequence[str | sql.Composable],
    *,
    statuses: Sequence[Status] | None = None,
    ids: Sequence[UUID] | None = None,
    newest_first: bool = True,
    limit: bool = False,
    extra: SqlFilter | None = None,
    prefix: str = "walk",
) -> Walk:
    """The rows of ``entry_filter`` (statuses: ``statuses``, default its effective ones)
    read range by range; see the module docstring.

    ``limit``: each branch stops after ``%({prefix}_limit)s`` rows (the caller merges the
    branches and takes as many). ``extra``: more conditions on each row. A column given as
    SQL (``expression AS name``) is computed in each branch.
    """
    statuses = tuple(statuses if statuses is not None else entry_filter.effective_statuses)
    keyset = keyset_condition(newest_first, prefix)
    stop: sql.Composable = sql.SQL("")
    if limit:
        stop = sql.SQL(" LIMIT {}").format(sql.Placeholder(prefix + "_limit"))

    def column(name: str | sql.Composable, fenced: bool) -> sql.Composable:
        if isinstance(name, sql.Composable):
            return name
        if name == ROW_CTID and not fenced:
            return sql.SQL("ctid AS row_ctid")
        return sql.Identifier(name)

    fenced = is_fenced(entry_filter, ids)
    selected = sql.SQL(", ").join(column(c, fenced) for c in columns)
    # The window's edge on the walk's side is in the bound; the other edge stops the walk.
    rows = build_filter(
        entry_filter,
        include_consumers=False,
        include_statuses=False,
        since=newest_first,
        until=not newest_first,
    )
    params: dict[str, Any] = {
        **rows.params,
        **bound_params(first_bound(entry_filter, newest_first=newest_first), prefix),
    }
    if extra is not None:
        rows.conditions.extend(extra.conditions)
        params.update(extra.params)

    if fenced:
        picked = SqlFilter()
        if ids is not None:
            picked.add("dlq_id = ANY(%(ids)s::uuid[])", ids=list(ids))
        if entry_filter.event_id is not None:
            picked.add("event_id = %(event_id)s", event_id=entry_filter.event_id)
        params.update(picked.params)
        matched = SqlFilter()
        if entry_filter.consumers:
            matched.add(
                "consumer = ANY(%(consumers)s::text[])", consumers=list(entry_filter.consumers)
            )
        matched.add("status = ANY(%(statuses)s::text[])", statuses=[s.value for s in statuses])
        params.update(matched.params)
        source = sql.SQL(_FENCED).format(
            picked=picked.where(),
            selected=selected,
            keyset=keyset,
            matched=matched.and_(),
            rows=rows.and_(),
            order=sql.SQL(_ORDER[newest_first]),
            stop=stop,
        )
        return Walk(source, params, 1)

    branches = []
    ranges = index_ranges(entry_filter, statuses)
    for i, index_range in enumerate(ranges):
        match, order = range_match(index_range, i, params, newest_first, prefix)
        branches.append(
            sql.SQL(_BRANCH).format(
                selected=selected,
                match=match,
                keyset=keyset,
                rows=rows.and_(),
                order=order,
                stop=stop,
            )
        )
    pairs = tuple(zip(ranges, branches, strict=True))
    if len(branches) == 1:
        return Walk(branches[0], params, 1, pairs)
    union = sql.SQL("({})").format(sql.SQL(" UNION ALL ").join(branches))
    return Walk(union, params, len(branches), pairs)


def range_match(
    index_range: IndexRange,
    i: int,
    params: dict[str, Any],
    newest_first: bool = True,
    prefix: str = "walk",
) -> tuple[sql.Composed, sql.SQL]:
    """(condition, ORDER BY) of one range of a walk; its parameters go into ``params``."""
    status = f"{prefix}_status_{i}"
    params[status] = index_range.status
    if index_range.consumer is None:
        match = sql.SQL(_STATUS_MATCH).format(status=sql.Placeholder(status))
        return match, sql.SQL(_ORDER[newest_first])
    consumer = f"{prefix}_consumer_{i}"
    params[consumer] = [index_range.consumer]
    match = sql.SQL(_RANGE_MATCH).format(
        consumer=sql.Placeholder(consumer), status=sql.Placeholder(status)
    )
    return match, sql.SQL(_CONSUMER_ORDER[newest_first])
