"""Read-only use cases: list (pages and the whole stream), show, stats."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from dlqctl.core.cursor import Position
from dlqctl.core.errors import NotFoundError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import IdSelector
from dlqctl.core.models import (
    Bucket,
    DlqEntry,
    DlqStats,
    EntryPage,
    ErrorGroup,
    MatchCount,
    Refailures,
    RetryFilter,
    StatsDimension,
    Status,
    iso_utc,
)
from dlqctl.core.settings import Settings
from dlqctl.db.connection import Connection, read_only_session
from dlqctl.db.entries import resolve_ids
from dlqctl.db.inspect_queries import (
    GroupCount,
    RetryScope,
    attempted_ids,
    fetch_entry,
    fetch_page,
    refailures,
    retry_counts,
    server_now,
    stats_rows,
    stream_entries,
    time_buckets,
)

NO_RETRY_FILTER = RetryFilter()


@contextmanager
def _read_only(settings: Settings, *, snapshot: bool = False) -> Iterator[Connection]:
    """A session whose transactions cannot write: inspecting never changes the table.

    ``snapshot``: every query sees the same snapshot (stats adds up several queries).
    """
    with read_only_session(settings.dsn, snapshot=snapshot) as conn:
        yield conn


def _scope(conn: Connection, retry: RetryFilter) -> RetryScope:
    """The retry filter as the queries apply it (--failed-again: the ids, read now)."""
    ids = attempted_ids(conn) if retry.failed_again else None
    return RetryScope(ids=ids, min_retries=retry.min_retries)


def list_page(
    settings: Settings,
    entry_filter: EntryFilter,
    *,
    limit: int,
    after: Position | None = None,
    payload: bool = False,
    retry: RetryFilter = NO_RETRY_FILTER,
) -> EntryPage:
    """One page of matching entries, newest first, starting after ``after``."""
    with _read_only(settings, snapshot=retry.failed_again) as conn:
        scope = _scope(conn, retry)
        # One row more than shown says whether there is a next page.
        entries = fetch_page(
            conn, entry_filter, limit=limit + 1, after=after, payload=payload, scope=scope
        )
    if len(entries) <= limit:
        return EntryPage(entries=entries, next_position=None)
    shown = entries[:limit]
    return EntryPage(entries=shown, next_position=Position(shown[-1].failed_at, shown[-1].dlq_id))


def iter_entries(
    settings: Settings,
    entry_filter: EntryFilter,
    *,
    after: Position | None = None,
    payload: bool = False,
    retry: RetryFilter = NO_RETRY_FILTER,
) -> Iterator[DlqEntry]:
    """Every matching entry after ``after``, newest first, streamed with flat memory.

    Connects and runs the query before returning, so that a database error surfaces
    before the caller has printed anything.
    """
    stream = _stream(settings, entry_filter, after=after, payload=payload, retry=retry)
    first = next(stream, None)
    return iter(()) if first is None else itertools.chain([first], stream)


def _stream(
    settings: Settings,
    entry_filter: EntryFilter,
    *,
    after: Position | None,
    payload: bool,
    retry: RetryFilter,
) -> Iterator[DlqEntry]:
    with _read_only(settings, snapshot=retry.failed_again) as conn:
        scope = _scope(conn, retry)
        yield from stream_entries(conn, entry_filter, after=after, payload=payload, scope=scope)


def show_entry(settings: Settings, selector: IdSelector) -> DlqEntry:
    """Every column of the one entry a full id or unique prefix names."""
    with _read_only(settings) as conn:
        (dlq_id,) = resolve_ids(conn, [selector])
        entry = fetch_entry(conn, dlq_id)
    if entry is None:  # deleted between resolving and reading
        raise NotFoundError(f"no entry with id {selector.text!r}")
    return entry


def compute_stats(
    settings: Settings,
    entry_filter: EntryFilter,
    *,
    by: StatsDimension | None = None,
    retry: RetryFilter = NO_RETRY_FILTER,
) -> DlqStats:
    """Counts, oldest pending entries, error groups and later failures of the matching
    entries (all from one snapshot)."""
    with _read_only(settings, snapshot=True) as conn:
        now = server_now(conn)
        scope = _scope(conn, retry)
        rows = stats_rows(conn, entry_filter, scope)
        buckets: list[tuple[datetime, int]] = []
        retries: list[tuple[int, int]] = []
        if by in (StatsDimension.HOUR, StatsDimension.DAY):
            buckets = time_buckets(conn, entry_filter, by.value, scope)
        elif by is StatsDimension.RETRIES:
            retries = retry_counts(conn, entry_filter, scope)
        later = refailures(conn, entry_filter, scope)
    error_groups = merge_error_groups(rows.groups)
    counts = _consumer_status_counts(rows.groups)
    return DlqStats(
        counts=counts,
        oldest_pending=rows.oldest_pending,
        error_groups=error_groups,
        as_of=now,
        by=by,
        breakdown=_breakdown(by, counts, error_groups, buckets, retries),
        refailures={c: Refailures(entries=e, attempts=a) for c, (e, a) in later.items()},
    )


def _consumer_status_counts(groups: Iterable[GroupCount]) -> tuple[MatchCount, ...]:
    totals: dict[tuple[str, Status], int] = {}
    for g in groups:
        totals[(g.consumer, g.status)] = totals.get((g.consumer, g.status), 0) + g.count
    return tuple(
        MatchCount(consumer=consumer, status=status, count=n)
        for (consumer, status), n in sorted(totals.items())
    )


def merge_error_groups(groups: Iterable[GroupCount]) -> tuple[ErrorGroup, ...]:
    """Error groups over every consumer and status, biggest first.

    The database groups each row by its stored fingerprint, or (rows other writers stored,
    before a backfill reached them) by the same function in SQL; see docs/performance.md.
    """
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for g in groups:
        counts[g.fingerprint] = counts.get(g.fingerprint, 0) + g.count
        if g.fingerprint not in examples or g.example < examples[g.fingerprint]:
            examples[g.fingerprint] = g.example
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(ErrorGroup(fingerprint=k, count=n, example=examples[k]) for k, n in ranked)


def _breakdown(
    by: StatsDimension | None,
    counts: tuple[MatchCount, ...],
    error_groups: tuple[ErrorGroup, ...],
    buckets: list[tuple[datetime, int]],
    retries: list[tuple[int, int]],
) -> tuple[Bucket, ...]:
    if by is None:
        return ()
    if by is StatsDimension.RETRIES:
        return tuple(Bucket(key=str(n), count=count) for n, count in retries)
    if by is StatsDimension.CONSUMER:
        per_consumer: dict[str, int] = {}
        for c in counts:
            per_consumer[c.consumer] = per_consumer.get(c.consumer, 0) + c.count
        ranked = sorted(per_consumer.items(), key=lambda item: (-item[1], item[0]))
        return tuple(Bucket(key=k, count=n) for k, n in ranked)
    if by is StatsDimension.STATUS:
        per_status = dict.fromkeys(Status, 0)
        for c in counts:
            per_status[c.status] += c.count
        return tuple(Bucket(key=s.value, count=n) for s, n in per_status.items() if n)
    if by is StatsDimension.ERROR:
        return tuple(
            Bucket(key=g.fingerprint, count=g.count, example=g.example) for g in error_groups
        )
    return _time_series(
        buckets, timedelta(hours=1) if by is StatsDimension.HOUR else timedelta(days=1)
    )


def _time_series(buckets: list[tuple[datetime, int]], step: timedelta) -> tuple[Bucket, ...]:
    """Buckets from the first to the last failure, empty ones included (a chart has no gaps)."""
    if not buckets:
        return ()
    counts = dict(buckets)
    start, end = buckets[0][0], buckets[-1][0]
    series = []
    at = start
    while at <= end:
        series.append(Bucket(key=iso_utc(at) or "", count=counts.get(at, 0), start=at))
        at += step
    return tuple(series)
