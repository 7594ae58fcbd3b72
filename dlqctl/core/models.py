"""Typed models shared by the use cases, the database layer and the CLI."""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dlqctl.core.cursor import Position, encode_cursor


class Status(enum.StrEnum):
    """The statuses the original table's check constraint allows."""

    PENDING = "pending"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


ALL_STATUSES: tuple[Status, ...] = tuple(Status)


def iso_utc(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` suffix, as every machine output prints timestamps."""
    if value is None:
        return None
    from datetime import UTC

    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text_or_base64(value: bytes | None) -> str | None:
    """Bytes as text where they are UTF-8, else as ``base64:...``."""
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode("ascii")


@dataclass(frozen=True)
class Header:
    """One Kafka header as stored in ``event_headers`` (value base64 text or null)."""

    key: str
    value: bytes | None

    @classmethod
    def from_stored(cls, pair: Sequence[Any]) -> Header:
        key, value = pair
        return cls(key=str(key), value=None if value is None else base64.b64decode(value))

    def to_stored(self) -> list[Any]:
        encoded = None if self.value is None else base64.b64encode(self.value).decode("ascii")
        return [self.key, encoded]

    def to_json(self) -> list[Any]:
        return [self.key, _text_or_base64(self.value)]


@dataclass(frozen=True)
class DlqEntry:
    """One row of the ``dlq`` table."""

    dlq_id: UUID
    consumer: str
    event_id: UUID
    status: Status
    retry_count: int
    failed_at: datetime
    error_message: str
    event_payload: Any = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    event_key: bytes | None = None
    event_headers: tuple[Header, ...] | None = None
    event_raw: bytes | None = None
    status_changed_at: datetime | None = None
    status_reason: str | None = None
    status_changed_by: str | None = None
    error_fingerprint: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DlqEntry:
        """Build from a dict row; columns that were not selected keep their defaults."""
        values = {k: v for k, v in row.items() if k in _ENTRY_FIELDS}
        values["status"] = Status(values["status"])
        headers = values.get("event_headers")
        if headers is not None:
            values["event_headers"] = tuple(Header.from_stored(p) for p in headers)
        for column in ("event_key", "event_raw"):
            if isinstance(values.get(column), memoryview):
                values[column] = bytes(values[column])
        return cls(**values)

    def to_json(self, *, details: bool = False, full: bool = False) -> dict[str, Any]:
        """The SPEC §4 entry object; ``details`` adds the payload and provenance, ``full``
        also the raw bytes and dlqctl's bookkeeping columns (``show``)."""
        data: dict[str, Any] = {
            "dlq_id": str(self.dlq_id),
            "consumer": self.consumer,
            "event_id": str(self.event_id),
            "status": self.status.value,
            "retry_count": self.retry_count,
            "failed_at": iso_utc(self.failed_at),
            "error_message": self.error_message,
        }
        if details or full:
            data.update(
                event_payload=self.event_payload,
                source_topic=self.source_topic,
                source_partition=self.source_partition,
                source_offset=self.source_offset,
                event_key=_text_or_base64(self.event_key),
                event_headers=(
                    None
                    if self.event_headers is None
                    else [h.to_json() for h in self.event_headers]
                ),
                status_changed_at=iso_utc(self.status_changed_at),
                status_reason=self.status_reason,
            )
        if full:
            data.update(
                event_raw=_text_or_base64(self.event_raw),
                status_changed_by=self.status_changed_by,
                error_fingerprint=self.error_fingerprint,
            )
        return data


_ENTRY_FIELDS = frozenset(DlqEntry.__dataclass_fields__)


@dataclass
class WriteResult:
    """What a write command did (SPEC §4 write-command JSON)."""

    action: str
    dry_run: bool
    matched: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    ineligible: int = 0
    failures: list[tuple[UUID, str]] = field(default_factory=list)
    topics: dict[str, int] | None = None
    # How the run ended: "ok", "failed" (exit 1) or "interrupted" (exit 130).
    outcome: str = "ok"
    # Why it failed or stopped: the line the command ends with on stderr; None when ok.
    error: str | None = None
    # More fields of one command's summary (replay: "canary", "skipped_entries", "plan").
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "action": self.action,
            "dry_run": self.dry_run,
            "matched": self.matched,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "ineligible": self.ineligible,
            "failures": [{"dlq_id": str(i), "error": e} for i, e in self.failures],
            "outcome": self.outcome,
            "error": self.error,
        }
        if self.topics is not None:
            data["topics"] = dict(self.topics)
        data.update(self.extra)
        return data

    def counts(self) -> dict[str, int]:
        return {
            "matched": self.matched,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "ineligible": self.ineligible,
        }


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class AuditRecord:
    """One row of ``dlq_actions``: what a write command did, by whom, on what."""

    actor: str
    host: str
    action: str
    filter: dict[str, Any]
    counts: dict[str, int]
    outcome: str
    reason: str | None = None
    ids: tuple[UUID, ...] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "at": iso_utc(self.at),
            "actor": self.actor,
            "host": self.host,
            "action": self.action,
            "filter": self.filter,
            "counts": self.counts,
            "outcome": self.outcome,
            "reason": self.reason,
        }
        if self.ids:
            data["ids"] = [str(i) for i in self.ids]
        if self.details:
            data["details"] = self.details
        return data


@dataclass(frozen=True)
class MatchCount:
    """How many entries a filter matches for one consumer and status."""

    consumer: str
    status: Status
    count: int


@dataclass(frozen=True)
class EntryPage:
    """One page of ``list``, newest first, and where the next page starts (None: no more)."""

    entries: list[DlqEntry]
    next_position: Position | None

    @property
    def next_cursor(self) -> str | None:
        return None if self.next_position is None else encode_cursor(self.next_position)


class StatsDimension(enum.StrEnum):
    """What ``stats --by`` breaks the matching entries down by."""

    CONSUMER = "consumer"
    STATUS = "status"
    ERROR = "error"
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True)
class ErrorGroup:
    """Entries whose error messages differ only in their variable parts."""

    fingerprint: str
    count: int
    example: str

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "count": self.count, "example": self.example}


@dataclass(frozen=True)
class Bucket:
    """One row of a ``stats --by`` breakdown; ``start`` is set for hour and day buckets."""

    key: str
    count: int
    start: datetime | None = None
    example: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "count": self.count}
        if self.example is not None:
            data["example"] = self.example
        return data


@dataclass(frozen=True)
class DlqStats:
    """What ``stats`` reports about the entries a filter matches."""

    counts: tuple[MatchCount, ...]
    oldest_pending: dict[str, datetime]
    error_groups: tuple[ErrorGroup, ...]
    as_of: datetime
    by: StatsDimension | None = None
    breakdown: tuple[Bucket, ...] = ()

    @property
    def total(self) -> int:
        return sum(c.count for c in self.counts)

    @property
    def oldest_pending_failed_at(self) -> datetime | None:
        return min(self.oldest_pending.values(), default=None)

    def to_json(self, *, top: int) -> dict[str, Any]:
        """The SPEC §4 stats object; ``top`` error groups, plus the breakdown when asked."""
        data: dict[str, Any] = {
            "total": self.total,
            "by_consumer_status": [
                {"consumer": c.consumer, "status": c.status.value, "count": c.count}
                for c in self.counts
            ],
            "oldest_pending_failed_at": iso_utc(self.oldest_pending_failed_at),
            "oldest_pending_by_consumer": {
                consumer: iso_utc(at) for consumer, at in sorted(self.oldest_pending.items())
            },
            "error_groups": [g.to_json() for g in self.error_groups[:top]],
            "as_of": iso_utc(self.as_of),
        }
        if self.by is not None:
            data["by"] = self.by.value
            data["breakdown"] = [b.to_json() for b in self.breakdown]
        return data


@dataclass(frozen=True)
class MatchPreview:
    """What a cleanup dry run would touch: counts per consumer × status and the age range."""

    counts: tuple[MatchCount, ...]
    oldest_failed_at: datetime | None
    newest_failed_at: datetime | None

    @property
    def total(self) -> int:
        return sum(c.count for c in self.counts)

    def to_json(self) -> dict[str, Any]:
        return {
            "by_consumer_status": [
                {"consumer": c.consumer, "status": c.status.value, "count": c.count}
                for c in self.counts
            ],
            "oldest_failed_at": iso_utc(self.oldest_failed_at),
            "newest_failed_at": iso_utc(self.newest_failed_at),
        }


@dataclass
class CleanupResult:
    """What discard or purge did (or, dry run, would do), beyond the shared write summary."""

    write: WriteResult
    preview: MatchPreview | None = None
    ineligible_ids: list[UUID] = field(default_factory=list)
    older_than: str | None = None
    cutoff: datetime | None = None
    batches: int = 0
    audit_recorded: bool = True
    # 0, or the exit code of a run that started and failed (1) or was interrupted (130);
    # write.outcome and write.error say how and why.
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        """The SPEC §4 write-command object plus cleanup's own fields."""
        data = self.write.to_json()
        if self.write.action == "purge":
            data["older_than"] = self.older_than
            data["cutoff"] = iso_utc(self.cutoff)
        if self.ineligible_ids:
            data["ineligible_ids"] = [str(i) for i in self.ineligible_ids]
        if self.preview is not None:
            data.update(self.preview.to_json())
        return data
