"""`dlqctl discard` and `dlqctl purge`: close out pending entries and delete old ones.

Both follow the shape of every batch run (dlqctl.core.runs): count the selection into a
plan, let the listener confirm it, then walk the matching rows in batches, each its own
short transaction, skipping rows that another run (a replay) holds locked instead of
waiting for them; both record one audit row per run, also when the run was interrupted or
failed part-way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from dlqctl.core.cleanup import DISCARD_BATCH, DiscardRequest, PurgeRequest
from dlqctl.core.errors import EXIT_INTERRUPTED, DlqctlError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import CleanupResult, MatchCount, MatchPreview, WriteResult
from dlqctl.core.runs import RunListener, RunPlan, SilentListener
from dlqctl.core.settings import Settings
from dlqctl.db import cleanup_queries as q
from dlqctl.db.connection import Connection, describe_target, session, translate_errors
from dlqctl.db.entries import count_matches, resolve_ids, split_explicit_ids
from dlqctl.usecases.audit import audit_record, record_run


def purge(
    settings: Settings,
    request: PurgeRequest,
    *,
    listener: RunListener[RunPlan] | None = None,
    stop: threading.Event | None = None,
) -> CleanupResult:
    """Delete matching entries older than the cutoff in batches (or, dry run, report them);
    ``stop`` ends the run after the batch in flight."""
    selection = request.selection
    result = CleanupResult(
        write=WriteResult(action="purge", dry_run=request.dry_run),
        older_than=request.older_than_text,
        cutoff=selection.until,
    )
    with session(settings.dsn, autocommit=True, application_name="dlqctl purge") as conn:
        if request.dry_run:
            _preview(conn, selection, None, result)
            return result
        q.set_lock_timeout(conn)
        plan = _plan(conn, selection, None, ())
        listener = listener or SilentListener()
        listener.confirm(plan)
        run = PurgeRun(conn, settings, result, listener, stop or threading.Event(), request)
        run.execute(plan)
        details = {
            "older_than": request.older_than_text,
            "cutoff": result.to_json()["cutoff"],
            "batch_size": request.batch_size,
            "batches": result.batches,
        }
        if run.error is not None:
            details["error"] = run.error.message
        audited = request.entry_filter.with_statuses(request.statuses)
        recorded = result.audit_recorded = _audit(settings, conn, result, audited, details=details)
    _conclude(run, result, "deleted", recorded)
    return result


def discard(
    settings: Settings,
    request: DiscardRequest,
    *,
    listener: RunListener[RunPlan] | None = None,
    stop: threading.Event | None = None,
) -> CleanupResult:
    """Mark the selected pending entries discarded (or, dry run, report them); ``stop`` ends
    the run after the batch in flight."""
    selection = request.selection
    result = CleanupResult(write=WriteResult(action="discard", dry_run=request.dry_run))
    with session(settings.dsn, autocommit=True, application_name="dlqctl discard") as conn:
        ids: list[UUID] | None = None
        if selection.ids:
            resolved = resolve_ids(conn, selection.ids)
            ids, result.ineligible_ids = split_explicit_ids(
                conn, resolved, selection, request.statuses
            )
            result.write.ineligible = len(result.ineligible_ids)
        if request.dry_run:
            _preview(conn, selection, ids, result)
            return result
        q.set_lock_timeout(conn)
        plan = _plan(conn, selection, ids, result.ineligible_ids)
        listener = listener or SilentListener()
        listener.confirm(plan)
        run = DiscardRun(conn, settings, result, listener, stop or threading.Event(), request, ids)
        run.execute(plan)
        given_ids = [*(ids or []), *result.ineligible_ids]
        details: dict[str, Any] = {"batches": result.batches}
        if run.error is not None:
            details["error"] = run.error.message
        recorded = result.audit_recorded = _audit(
            settings,
            conn,
            result,
            selection,
            reason=request.reason,
            ids=given_ids,
            details=details,
        )
    _conclude(run, result, "discarded", recorded)
    return result


def _counts(
    conn: Connection, selection: EntryFilter, ids: Sequence[UUID] | None
) -> tuple[MatchCount, ...]:
    """What matches now, per consumer and status (explicit ids: only those)."""
    if ids is not None and not ids:
        return ()
    return tuple(count_matches(conn, selection, ids))


def _plan(
    conn: Connection,
    selection: EntryFilter,
    ids: Sequence[UUID] | None,
    ineligible: Sequence[UUID],
) -> RunPlan:
    return RunPlan(match_counts=_counts(conn, selection, ids), ineligible=tuple(ineligible))


def _preview(
    conn: Connection, selection: EntryFilter, ids: Sequence[UUID] | None, result: CleanupResult
) -> None:
    """Fill a dry run's result: what matches now, per consumer and status, and its age range."""
    counts = _counts(conn, selection, ids)
    oldest = newest = None
    if counts:
        oldest, newest = q.age_range(conn, selection, ids)
    result.preview = MatchPreview(counts=counts, oldest_failed_at=oldest, newest_failed_at=newest)
    result.write.matched = result.write.succeeded = result.preview.total


@dataclass
class _CleanupRun:
    """One batched run on its connection: counts into ``result``, stops when ``stop`` is set;
    ``error`` is what ended it early (its batches so far are committed)."""

    conn: Connection
    settings: Settings
    result: CleanupResult
    listener: RunListener[RunPlan]
    stop: threading.Event

    def __post_init__(self) -> None:
        self.target = describe_target(self.settings.dsn)
        self.error: DlqctlError | None = None
        self.total = 0  # what the plan counted

    def _failed(self, error: DlqctlError, batch_size: int) -> None:
        """The run ends with ``error``: the batch in flight counts as failed (attempted, not
        changed; its transaction rolled back), what the plan counted beyond it as skipped."""
        write = self.result.write
        write.outcome = "failed"
        self.error = error
        left = max(0, self.total - write.matched)
        in_flight = min(batch_size, left)
        write.matched += left
        write.failed += in_flight
        write.skipped += left - in_flight

    def _stopping(self) -> bool:
        if self.stop.is_set():
            self.result.write.outcome = "interrupted"
            return True
        return False

    def _walk(
        self,
        selection: EntryFilter,
        batch_size: int,
        run_batch: Callable[[q.Keyset | None], q.BatchOutcome],
    ) -> None:
        """Batches along the keyset until the selection is exhausted, a stop, or an error."""
        write = self.result.write
        after: q.Keyset | None = None
        try:
            with translate_errors(self.target):
                while True:
                    if self._stopping():
                        # What the run did not reach is matched but skipped.
                        rest = q.count_after(self.conn, selection, after)
                        write.matched += rest
                        write.skipped += rest
                        return
                    outcome = run_batch(after)
                    self.result.batches += 1
                    write.matched += outcome.seen
                    write.succeeded += outcome.changed
                    write.skipped += outcome.skipped
                    self.listener.advanced(write.matched)
                    if outcome.seen < batch_size or outcome.last is None:
                        return
                    after = outcome.last
        except DlqctlError as exc:
            self._failed(exc, batch_size)


@dataclass
class PurgeRun(_CleanupRun):
    """A purge's batches: DELETE along the keyset, ``request.batch_size`` rows at a time."""

    request: PurgeRequest

    def execute(self, plan: RunPlan) -> WriteResult:
        self.total = plan.total
        self.listener.started(plan.total)
        selection, size = self.request.selection, self.request.batch_size

        def batch(after: q.Keyset | None) -> q.BatchOutcome:
            return q.delete_batch(self.conn, selection, after, size)

        self._walk(selection, size, batch)
        return self.result.write


@dataclass
class DiscardRun(_CleanupRun):
    """A discard's batches: explicit (eligible) ids in chunks, else UPDATE along the keyset."""

    request: DiscardRequest
    ids: list[UUID] | None

    def execute(self, plan: RunPlan) -> WriteResult:
        self.total = plan.total
        self.listener.started(plan.total)
        if self.ids is not None:
            self._discard_ids(self.ids)
            return self.result.write
        selection, reason, actor = self.request.selection, self.request.reason, self.settings.actor

        def batch(after: q.Keyset | None) -> q.BatchOutcome:
            return q.discard_batch(
                self.conn, selection, after, DISCARD_BATCH, reason=reason, actor=actor
            )

        self._walk(selection, DISCARD_BATCH, batch)
        return self.result.write

    def _discard_ids(self, ids: list[UUID]) -> None:
        write = self.result.write
        write.matched = len(ids)
        selection = self.request.selection
        in_flight = 0
        try:
            with translate_errors(self.target):
                for start in range(0, len(ids), DISCARD_BATCH):
                    if self._stopping():
                        break
                    chunk = ids[start : start + DISCARD_BATCH]
                    in_flight = len(chunk)
                    changed = q.discard_ids(
                        self.conn,
                        chunk,
                        selection,
                        reason=self.request.reason,
                        actor=self.settings.actor,
                    )
                    in_flight = 0
                    self.result.batches += 1
                    write.succeeded += len(changed)
                    self.listener.advanced(start + len(chunk))
        except DlqctlError as exc:
            write.outcome = "failed"
            self.error = exc
            write.failed = in_flight  # the chunk in flight: attempted, rolled back
        # Eligible ids left unchanged: locked by another run, changed meanwhile, or not
        # reached before a stop or an error.
        write.skipped = write.matched - write.succeeded - write.failed


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


def _conclude(run: _CleanupRun, result: CleanupResult, verb: str, recorded: bool) -> None:
    """Say in the result why a run that started did not end "ok": the error that ended it,
    noting what it had already changed (those batches are committed), or the interrupt."""
    write = result.write
    if run.error is not None:
        notes = []
        if write.succeeded:
            notes.append(f"{write.succeeded} entries had been {verb} before the error")
        if not recorded:
            notes.append("the run could not be recorded in the audit log")
        write.error = run.error.message + (f" ({'; '.join(notes)})" if notes else "")
        result.exit_code = run.error.exit_code
    elif write.outcome == "interrupted":
        write.error = (
            f"interrupted: {write.succeeded} entries {verb}, {write.skipped} not reached"
            " (they stay as they were)"
            + ("" if recorded else "; the run could not be recorded in the audit log")
        )
        result.exit_code = EXIT_INTERRUPTED
