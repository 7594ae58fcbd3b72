"""The selection shared by list, stats, replay, discard and purge."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dlqctl.core.ids import IdSelector
from dlqctl.core.models import ALL_STATUSES, Status, iso_utc


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a command acts on; empty fields select everything.

    The time window is half-open: ``since <= failed_at < until``. ``error`` is a
    case-insensitive literal substring of ``error_message``. ``ids`` and the other
    fields select their intersection.
    """

    consumers: tuple[str, ...] = ()
    statuses: tuple[Status, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    error: str | None = None
    event_id: UUID | None = None
    ids: tuple[IdSelector, ...] = field(default=())

    @property
    def effective_statuses(self) -> tuple[Status, ...]:
        """The statuses selected; no status filter means all three."""
        return self.statuses or ALL_STATUSES

    def with_statuses(self, statuses: tuple[Status, ...]) -> EntryFilter:
        return EntryFilter(
            consumers=self.consumers,
            statuses=statuses,
            since=self.since,
            until=self.until,
            error=self.error,
            event_id=self.event_id,
            ids=self.ids,
        )

    def to_json(self) -> dict[str, Any]:
        """The filter as recorded in the audit log (only the parts that were given)."""
        data: dict[str, Any] = {}
        if self.consumers:
            data["consumer"] = list(self.consumers)
        if self.statuses:
            data["status"] = [s.value for s in self.statuses]
        if self.since:
            data["since"] = iso_utc(self.since)
        if self.until:
            data["until"] = iso_utc(self.until)
        if self.error is not None:
            data["error"] = self.error
        if self.event_id:
            data["event_id"] = str(self.event_id)
        if self.ids:
            data["ids"] = [s.text for s in self.ids]
        return data
