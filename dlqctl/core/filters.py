"""The selection shared by list, stats, replay, discard and purge."""

from __future__ import annotations

import dataclasses
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

    def __post_init__(self) -> None:
        # Each consumer and status once, in the order given: queries walk one index range
        # per consumer × status, so a repeat would select (and replay) its entries twice.
        object.__setattr__(self, "consumers", tuple(dict.fromkeys(self.consumers)))
        object.__setattr__(self, "statuses", tuple(dict.fromkeys(self.statuses)))

    @property
    def effective_statuses(self) -> tuple[Status, ...]:
        """The statuses selected; no status filter means all three."""
        return self.statuses or ALL_STATUSES

    def with_statuses(self, statuses: tuple[Status, ...]) -> EntryFilter:
        return dataclasses.replace(self, statuses=statuses)

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
