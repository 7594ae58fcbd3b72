"""Discard and purge requests and their defaults (light: the CLI's option help reads them
at import). See dlqctl.core.runs for the shape every batch run shares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dlqctl.core.errors import UsageError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status

# Chosen from the purge benchmark (bench/results/purge.md, 1M rows, a writer inserting every
# 5 ms): 5,000-row batches deleted fastest (240k rows/s median vs 200k at 1,000 and 207k at
# 20,000), each batch took ~19 ms (88 ms at 20,000), and the writer's worst wait was lowest
# (16 ms vs 22 and 32 ms).
DEFAULT_PURGE_BATCH = 5_000
MAX_BATCH = 100_000
# An UPDATE writes a new row version and an entry in every index: over ten times the work of
# a DELETE per row (bench/results/purge.md: ~16k vs ~240k rows/s). 1,000-row batches keep
# each discard transaction short (~57 ms).
DISCARD_BATCH = 1_000
PURGE_DEFAULT_STATUSES: tuple[Status, ...] = (Status.REPLAYED, Status.DISCARDED)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PurgeRequest:
    """A purge: entries in the given filter whose failed_at is older than ``older_than``
    before ``as_of`` (by default the moment the request is made)."""

    entry_filter: EntryFilter
    older_than: timedelta
    older_than_text: str
    batch_size: int = DEFAULT_PURGE_BATCH
    dry_run: bool = False
    as_of: datetime = field(default_factory=_utc_now)

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

    @property
    def selection(self) -> EntryFilter:
        """The filter with the statuses and ``failed_at < as_of - older_than`` applied."""
        cutoff = self.as_of - self.older_than
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
    def statuses(self) -> tuple[Status, ...]:
        """Only pending entries are discarded."""
        return (Status.PENDING,)

    @property
    def selection(self) -> EntryFilter:
        """The filter with the status pending applied (explicit ids kept)."""
        return self.entry_filter.with_statuses(self.statuses)
