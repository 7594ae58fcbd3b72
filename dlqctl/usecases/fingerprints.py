"""Backfilling the error fingerprint of rows other writers stored (see docs/performance.md).

``stats`` is correct without it (it fingerprints those rows as it reads them) and fast
with it (it reads stored fingerprints from an index). Run it after upgrading to migration
0006, and then regularly (from cron, say): the original services keep storing rows without
a fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dlqctl.core.models import Status
from dlqctl.core.settings import Settings
from dlqctl.db import cleanup_queries
from dlqctl.db.connection import session
from dlqctl.db.filters import Bound
from dlqctl.db.fingerprints import backfill_batch, count_missing

DEFAULT_BACKFILL_BATCH = 1_000
APPLICATION_NAME = "dlqctl backfill"


@dataclass
class BackfillResult:
    """What a backfill run walked and changed; ``missing`` is what it found without one
    (``missing - changed`` were held by other transactions, left for a later run)."""

    seen: int = 0
    missing: int = 0
    changed: int = 0
    batches: int = 0
    interrupted: bool = False


def missing_fingerprints(settings: Settings) -> int:
    """How many rows have no stored fingerprint."""
    with session(settings.dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        return count_missing(conn)


def backfill_fingerprints(
    settings: Settings,
    *,
    batch_size: int = DEFAULT_BACKFILL_BATCH,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[BackfillResult], None] | None = None,
) -> BackfillResult:
    """Store the fingerprint of every row that has none, one short batch at a time, one
    status after the other (a row whose status changes meanwhile may wait for the next
    run)."""
    result = BackfillResult()
    with session(settings.dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        cleanup_queries.set_lock_timeout(conn)
        for status in Status:
            after: Bound | None = None
            while True:
                if should_stop is not None and should_stop():
                    result.interrupted = True
                    return result
                batch = backfill_batch(conn, status, after, batch_size)
                result.batches += 1
                result.seen += batch.seen
                result.missing += batch.missing
                result.changed += batch.changed
                if progress is not None:
                    progress(result)
                if batch.seen < batch_size or batch.last is None:
                    break
                after = batch.last
    return result
