"""Discard and purge: close out pending entries and delete old ones, in short batches.

Both walk the matching rows in batches, each its own short transaction, skipping rows that
another run (a replay) holds locked instead of waiting for them; both record one audit row
per run, also when the run was interrupted or failed part-way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from dlqctl.core.cleanup import (
    DEFAULT_PURGE_BATCH,
    DISCARD_BATCH,
    MAX_BATCH,
    PURGE_DEFAULT_STATUSES,
)
from dlqctl.core.errors import DlqctlError, UsageError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import CleanupResult, MatchCount, MatchPreview, Status, WriteResult
from dlqctl.core.settings import Settings
from dlqctl.db import cleanup_queries as q
from dlqctl.db.connection import Connection, describe_target, session, translate_errors
from dlqctl.db.entries import count_matches, resolve_ids, split_explicit_ids
from dlqctl.usecases.audit import audit_record, record_run


class Progress(Protocol):
    """Where a run reports its progress (a progress bar on a terminal)."""

    def start(self, total: int) -> None: ...

    def advance(self, done: int) -> None: ...


StopRequested = Callable[[], bool]


@dataclass(frozen=True)
class PurgeRequest:
    """A purge: entries whose failed_at is older than ``older_than``, in the given filter."""

    entry_filter: EntryFilter
    older_than: timedelta
    older_than_text: str
    batch_size: int = DEFAULT_PURGE_BATCH
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.entry_filter.ids:
            raise UsageError("purge selects by age and filters; it takes no entry ids")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise UsageError(f"--batch-size must be between 1 and {MAX_BATCH}")

    @property
    def statuses(self) -> tuple[Status, ...]:
        """The statuses given, else replayed and discarded (pending only when spelled out)."""
        return self.entry_filter.statuses or PURGE_DEFAULT_STATUSES

    @property
    def deletes_pending(self) -> bool:
        return Status.PENDING in self.statuses

    def selection(self, now: datetime | None = None) -> EntryFilter:
        """The filter with the statuses and ``failed_at < now - older_than`` applied."""
        cutoff = (now or datetime.now(UTC)) - self.older_than
        until = self.entry_filter.until
        return dataclasses.replace(
            self.entry_filter,
            statuses=self.statuses,
            until=cutoff if until is None else min(until, cutoff),
        )


@dataclass(frozen=True)
class DiscardRequest:
    """A discard: pending entries selected by ids and/or filters, with an optional reason."""

    entry_filter: EntryFilter
    reason: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        other = set(self.entry_filter.statuses) - {Status.PENDING}
        if other:
            shown = ", ".join(sorted(s.value for s in other))
            raise UsageError(
                f"only pending entries can be discarded; --status {shown} selects none"
            )
        # Nothing but (at most) -s pending would discard every pending entry: a slip more
        # likely than an intent, so it needs a real selection.
        if self.entry_filter == EntryFilter(statuses=self.entry_filter.statuses):
            raise UsageError(
                "give entry ids or at least one filter besides --status"
                " (--consumer, --since, --until, --error, --event-id)"
            )
        if self.reason is not None and not self.reason.strip():
            raise UsageError("--reason must not be empty")

    @property
    def selection(self) -> EntryFilter:
        return self.entry_filter.with_statuses((Status.PENDING,))


def count_purge(settings: Settings, request: PurgeRequest) -> list[MatchCount]:
    """What the purge would delete now, per consumer and status (for the prompt)."""
    with session(settings.dsn) as conn:
        return count_matches(conn, request.selection())


def count_discard(settings: Settings, request: DiscardRequest) -> list[MatchCount]:
    """What the discard would change now, per consumer and status (for the prompt)."""
    with session(settings.dsn) as conn:
        return count_matches(conn, request.selection)


def purge(
    settings: Settings,
    request: PurgeRequest,
    *,
    progress: Progress | None = None,
    should_stop: StopRequested | None = None,
) -> CleanupResult:
    """Delete matching entries older than the cutoff in batches (or, dry run, report them)."""
    selection = request.selection()
    result = CleanupResult(
        write=WriteResult(action="purge", dry_run=request.dry_run),
        older_than=request.older_than_text,
        cutoff=selection.until,
    )
    with session(settings.dsn, autocommit=True, application_name="dlqctl purge") as conn:
        if request.dry_run:
            _preview(conn, selection, None, result)
            return result
        run = _Run(conn, describe_target(settings.dsn), result, progress, should_stop)

        def batch(after: q.Keyset | None) -> q.BatchOutcome:
            return q.delete_batch(conn, selection, after, request.batch_size)

        error = run.walk(selection, request.batch_size, batch)
        details = {
            "older_than": request.older_than_text,
            "cutoff": result.to_json()["cutoff"],
            "batch_size": request.batch_size,
            "batches": result.batches,
        }
        audited = request.entry_filter.with_statuses(request.statuses)
        recorded = result.audit_recorded = _audit(settings, conn, result, audited, details=details)
    if error is not None:
        raise _after_partial_run(error, result, "deleted", recorded)
    return result


def discard(
    settings: Settings,
    request: DiscardRequest,
    *,
    progress: Progress | None = None,
    should_stop: StopRequested | None = None,
) -> CleanupResult:
    """Mark the selected pending entries discarded (or, dry run, report them)."""
    selection = request.selection
    result = CleanupResult(write=WriteResult(action="discard", dry_run=request.dry_run))
    with session(settings.dsn, autocommit=True, application_name="dlqctl discard") as conn:
        ids: list[UUID] | None = None
        if selection.ids:
            resolved = resolve_ids(conn, selection.ids)
            ids, result.ineligible_ids = split_explicit_ids(
                conn, resolved, selection, (Status.PENDING,)
            )
            result.write.ineligible = len(result.ineligible_ids)
        if request.dry_run:
            _preview(conn, selection, ids, result)
            return result
        run = _Run(conn, describe_target(settings.dsn), result, progress, should_stop)
        if ids is not None:
            error = run.discard_ids(ids, selection, request.reason, settings.actor)
        else:

            def batch(after: q.Keyset | None) -> q.BatchOutcome:
                return q.discard_batch(
                    conn,
                    selection,
                    after,
                    DISCARD_BATCH,
                    reason=request.reason,
                    actor=settings.actor,
                )

            error = run.walk(selection, DISCARD_BATCH, batch)
        given_ids = [*(ids or []), *result.ineligible_ids]
        recorded = result.audit_recorded = _audit(
            settings,
            conn,
            result,
            selection,
            reason=request.reason,
            ids=given_ids,
            details={"batches": result.batches},
        )
    if error is not None:
        raise _after_partial_run(error, result, "discarded", recorded)
    return result


def _preview(
    conn: Connection, selection: EntryFilter, ids: Sequence[UUID] | None, result: CleanupResult
) -> None:
    """Fill a dry run's result: what matches now, per consumer and status, and its age range."""
    counts: tuple[MatchCount, ...] = ()
    oldest = newest = None
    if ids is None or ids:
        counts = tuple(count_matches(conn, selection, ids))
        if counts:
            oldest, newest = q.age_range(conn, selection, ids)
    result.preview = MatchPreview(counts=counts, oldest_failed_at=oldest, newest_failed_at=newest)
    result.write.matched = result.write.succeeded = result.preview.total


@dataclass
class _Run:
    """One batched run on its connection: counts into ``result``, stops when asked."""

    conn: Connection
    target: str
    result: CleanupResult
    progress: Progress | None
    should_stop: StopRequested | None

    def __post_init__(self) -> None:
        q.set_lock_timeout(self.conn)

    def _stopping(self) -> bool:
        if self.should_stop is not None and self.should_stop():
            self.result.write.outcome = "interrupted"
            return True
        return False

    def walk(
        self,
        selection: EntryFilter,
        batch_size: int,
        run_batch: Callable[[q.Keyset | None], q.BatchOutcome],
    ) -> DlqctlError | None:
        """Batches along the keyset until the selection is exhausted, a stop, or an error."""
        write = self.result.write
        after: q.Keyset | None = None
        try:
            with translate_errors(self.target):
                if self.progress is not None:
                    self.progress.start(sum(c.count for c in count_matches(self.conn, selection)))
                while True:
                    if self._stopping():
                        # What the run did not reach is matched but skipped (SPEC §4).
                        rest = q.count_after(self.conn, selection, after)
                        write.matched += rest
                        write.skipped += rest
                        return None
                    outcome = run_batch(after)
                    self.result.batches += 1
                    write.matched += outcome.seen
                    write.succeeded += outcome.changed
                    write.skipped += outcome.skipped
                    if self.progress is not None:
                        self.progress.advance(outcome.seen)
                    if outcome.seen < batch_size or outcome.last is None:
                        return None
                    after = outcome.last
        except DlqctlError as exc:
            write.outcome = "failed"
            return exc

    def discard_ids(
        self, ids: list[UUID], selection: EntryFilter, reason: str | None, actor: str
    ) -> DlqctlError | None:
        """Discard explicit (eligible) ids in chunks."""
        write = self.result.write
        write.matched = len(ids)
        error: DlqctlError | None = None
        if self.progress is not None:
            self.progress.start(len(ids))
        try:
            with translate_errors(self.target):
                for start in range(0, len(ids), DISCARD_BATCH):
                    if self._stopping():
                        break
                    chunk = ids[start : start + DISCARD_BATCH]
                    changed = q.discard_ids(self.conn, chunk, selection, reason=reason, actor=actor)
                    self.result.batches += 1
                    write.succeeded += len(changed)
                    if self.progress is not None:
                        self.progress.advance(len(chunk))
        except DlqctlError as exc:
            write.outcome = "failed"
            error = exc
        # Eligible ids left unchanged: locked by another run, changed meanwhile, or not
        # reached before a stop or an error.
        write.skipped = write.matched - write.succeeded
        return error


def _audit(
    settings: Settings,
    conn: Connection,
    result: CleanupResult,
    entry_filter: EntryFilter,
    *,
    reason: str | None = None,
    ids: Sequence[UUID] | None = None,
    details: dict[str, Any] | None = None,
) -> bool:
    """Record the run; whether that worked (when it did not, the summary says so)."""
    record = audit_record(
        settings, result.write, entry_filter, reason=reason, ids=ids, details=details
    )
    return record_run(settings, record, conn)


def _after_partial_run(
    error: DlqctlError, result: CleanupResult, verb: str, recorded: bool
) -> DlqctlError:
    """The run's error, noting what it had already changed (those batches are committed)."""
    notes = []
    if result.write.succeeded:
        notes.append(f"{result.write.succeeded} entries had been {verb} before the error")
    if not recorded:
        notes.append("the run could not be recorded in the audit log")
    if notes:
        error.args = (f"{error.message} ({'; '.join(notes)})",)
    return error
