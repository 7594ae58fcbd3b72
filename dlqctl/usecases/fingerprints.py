"""`dlqctl backfill`: store the error fingerprint of rows other writers stored (see
docs/performance.md, "Error groups and the fingerprint backfill").

``stats`` is correct without it (it fingerprints those rows as it reads them) and fast with
it (it reads stored fingerprints from an index). Run it after upgrading to migration 0006,
and then regularly (from cron, next to purge): the original services keep storing rows
without a fingerprint. It has the shape of every batch run (docs/architecture.md): a
request, a plan counted first, a listener, a stop event, one audit row.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from dlqctl.core.backfill import BackfillRequest
from dlqctl.core.errors import EXIT_INTERRUPTED, DlqctlError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status, WriteResult
from dlqctl.core.runs import RunListener, RunPlan, SilentListener
from dlqctl.core.settings import Settings
from dlqctl.db import cleanup_queries
from dlqctl.db.connection import Connection, describe_target, session, translate_errors
from dlqctl.db.filters import Bound
from dlqctl.db.fingerprints import backfill_batch, count_missing
from dlqctl.usecases.audit import audit_record, record_run

APPLICATION_NAME = "dlqctl backfill"


@dataclass(frozen=True)
class BackfillPlan(RunPlan):
    """Rows without a stored fingerprint when the run starts."""

    missing: int = 0

    @property
    def total(self) -> int:
        return self.missing


@dataclass
class BackfillResult:
    """What a backfill walked, found without a fingerprint and changed (``missing -
    changed`` were held by other transactions, left for a later run), and its summary."""

    write: WriteResult = field(default_factory=lambda: WriteResult("backfill", dry_run=False))
    seen: int = 0
    missing: int = 0
    changed: int = 0
    batches: int = 0
    exit_code: int = 0

    @property
    def interrupted(self) -> bool:
        return self.write.outcome == "interrupted"


def missing_fingerprints(settings: Settings) -> int:
    """How many rows have no stored fingerprint."""
    with session(settings.dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        return count_missing(conn)


def backfill(
    settings: Settings,
    request: BackfillRequest | None = None,
    *,
    listener: RunListener[BackfillPlan] | None = None,
    stop: threading.Event | None = None,
) -> BackfillResult:
    """Store the fingerprint of every row that has none, one short batch at a time, one
    status after the other (a row whose status changes meanwhile may wait for the next
    run); with ``dry_run``, only count them."""
    request = request or BackfillRequest()
    listener = listener or SilentListener()
    stop = stop or threading.Event()
    result = BackfillResult(write=WriteResult("backfill", dry_run=request.dry_run))
    with session(settings.dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        plan = BackfillPlan(missing=count_missing(conn))
        if request.dry_run:
            result.write.matched = result.write.succeeded = plan.missing
            return result
        listener.confirm(plan)
        if plan.missing:
            _walk(conn, describe_target(settings.dsn), request, plan, result, listener, stop)
        write = result.write
        write.matched = max(result.missing, plan.missing)
        write.succeeded = result.changed
        write.skipped = write.matched - write.succeeded
        details: dict[str, object] = {
            "batch_size": request.batch_size,
            "batches": result.batches,
        }
        if write.error is not None:
            details["error"] = write.error
        record = audit_record(settings, write, EntryFilter(), details=details)
        if not record_run(settings, record, conn):
            note = "the run could not be recorded in the audit log"
            if write.error is not None:
                write.error += f" ({note})"
            else:
                listener.note(f"warning: {note} (dlq_actions)")
    return result


def _walk(
    conn: Connection,
    target: str,
    request: BackfillRequest,
    plan: BackfillPlan,
    result: BackfillResult,
    listener: RunListener[BackfillPlan],
    stop: threading.Event,
) -> None:
    """The batches, until every status is walked, a stop, or a database error."""
    listener.started(plan.missing)
    try:
        with translate_errors(target):
            cleanup_queries.set_lock_timeout(conn)
            for status in Status:
                after: Bound | None = None
                while True:
                    if stop.is_set():
                        result.write.outcome = "interrupted"
                        result.write.error = (
                            f"interrupted: {result.changed} fingerprints stored; the rest are"
                            " left for the next run (stats stays correct without them)"
                        )
                        result.exit_code = EXIT_INTERRUPTED
                        return
                    batch = backfill_batch(conn, status, after, request.batch_size)
                    result.batches += 1
                    result.seen += batch.seen
                    result.missing += batch.missing
                    result.changed += batch.changed
                    listener.advanced(min(result.missing, plan.missing))
                    if batch.seen < request.batch_size or batch.last is None:
                        break
                    after = batch.last
    except DlqctlError as exc:
        result.write.outcome = "failed"
        result.write.error = (
            f"{exc.message} ({result.changed} fingerprints had been stored; re-run"
            " `dlqctl backfill` to finish)"
        )
        result.exit_code = exc.exit_code
