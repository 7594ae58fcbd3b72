"""The request of `dlqctl backfill` (light: the CLI's option help reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from dlqctl.core.errors import UsageError

DEFAULT_BACKFILL_BATCH = 1_000
MAX_BACKFILL_BATCH = 10_000


@dataclass(frozen=True)
class BackfillRequest:
    """A backfill: every row without a stored fingerprint, ``batch_size`` rows a batch."""

    batch_size: int = DEFAULT_BACKFILL_BATCH
    dry_run: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BACKFILL_BATCH:
            raise UsageError(f"--batch-size must be between 1 and {MAX_BACKFILL_BATCH}")
