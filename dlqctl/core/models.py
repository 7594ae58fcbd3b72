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

from dlqctl.core import jsontext
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
class Attempt:
    """A later failure of a replayed entry (one ``dlq_attempts`` row): ``attempt`` is the
    entry's retry_count when it failed again."""

    attempt: int
    failed_at: datetime
    error_message: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "failed_at": iso_utc(self.failed_at),
            "error_message": self.error_message,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
        }


def raw_or_json(value: bytes | None) -> Any:
    """Message bytes as a JSON value when they are strict JSON, else the
    ``{"_dlqctl_raw_base64": ...}`` stand-in the consumer stores for such bytes (None: a null
    value)."""
    if value is None:
        return None
    try:
        return jsontext.parse(value)
    except jsontext.JsonTextError:
        return {RAW_PAYLOAD_KEY: base64.b64encode(value).decode("ascii")}


# The consumer's stand-in for bytes that are not JSON (dlqctl.core.events, which imports
# this module, stores it).
RAW_PAYLOAD_KEY = "_dlqctl_raw_base64"


@dataclass(frozen=True)
class DlqEntry:
    """One row of the ``dlq`` table (``show`` also reads its attempts)."""

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
    # The edit (`dlqctl edit`): what replay publishes instead of the original value/headers.
    edited_raw: bytes | None = None
    edited_headers: tuple[Header, ...] | None = None
    edited_at: datetime | None = None
    edited_by: str | None = None
    # Whether replay sends an edited version (list reads only this of the edit).
    is_edited: bool = False
    # event_payload as jsonb prints it, where event_raw is missing (what replay would send).
    payload_text: str | None = None
    # Later failures after replays, oldest first (show only).
    attempts: tuple[Attempt, ...] = ()

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DlqEntry:
        """Build from a dict row; columns that were not selected keep their defaults."""
        values = {k: v for k, v in row.items() if k in _ENTRY_FIELDS}
        values["status"] = Status(values["status"])
        for column in ("event_headers", "edited_headers"):
            headers = values.get(column)
            if headers is not None:
                values[column] = tuple(Header.from_stored(p) for p in headers)
        for column in ("event_key", "event_raw", "edited_raw"):
            if isinstance(values.get(column), memoryview):
                values[column] = bytes(values[column])
        if "is_edited" not in values and ("edited_raw" in values or "edited_headers" in values):
            values["is_edited"] = (
                values.get("edited_raw") is not None or values.get("edited_headers") is not None
            )
        return cls(**values)

    @property
    def original_value(self) -> bytes | None:
        """The value replay sends when the entry is not edited: the original bytes, else the
        payload as compact JSON (read as ``payload_text``); None for a tombstone."""
        from dlqctl.core.replay import message_value

        if self.event_raw is None and self.payload_text is None:
            value = message_value(None, json.dumps(self.event_payload, ensure_ascii=False))
        else:
            value = message_value(self.event_raw, self.payload_text)
        return value.encode("utf-8") if isinstance(value, str) else value

    @property
    def sent_value(self) -> bytes | None:
        """The value replay sends: the edited bytes, else the original value."""
        return self.edited_raw if self.edited_raw is not None else self.original_value

    @property
    def sent_headers(self) -> tuple[Header, ...]:
        """The headers replay sends besides its own ``dlq-*`` ones."""
        headers = self.edited_headers if self.edited_headers is not None else self.event_headers
        return tuple(h for h in headers or () if not h.key.startswith("dlq-"))

    def edit_json(self) -> dict[str, Any] | None:
        """``show``'s ``edited`` object (None when the entry is not edited): when, by whom,
        and the value and headers replay sends (the value as a JSON value, or the raw-bytes
        stand-in); ``parts`` says which of the two were edited."""
        if not self.is_edited:
            return None
        parts = [
            name
            for name, column in (("value", self.edited_raw), ("headers", self.edited_headers))
            if column is not None
        ]
        return {
            "at": iso_utc(self.edited_at),
            "by": self.edited_by,
            "value": raw_or_json(self.sent_value),
            "headers": [h.to_json() for h in self.sent_headers],
            "parts": parts,
        }

    def to_json(self, *, details: bool = False, full: bool = False) -> dict[str, Any]:
        """The entry object of the machine output (docs/inspect.md); ``details`` adds the
        payload and provenance, ``full`` also the raw bytes, dlqctl's bookkeeping columns,
        the attempts and the edit (``show``); without ``full``, ``edited`` is a flag."""
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
                attempts=[a.to_json() for a in self.attempts],
                edited=self.edit_json(),
            )
        else:
            # Added last: CSV columns keep their places (list marks edited entries).
            data["edited"] = self.is_edited
        return data


_ENTRY_FIELDS = frozenset(DlqEntry.__dataclass_fields__)


@dataclass
class WriteResult:
    """What a write command did: its `-o json` summary (see docs/operations.md)."""

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
    # retry_count: how many times the entries were replayed (docs/inspect.md).
    RETRIES = "retries"


@dataclass(frozen=True)
class RetryFilter:
    """``stats``/``list`` filters on replays and later failures (docs/inspect.md):
    ``failed_again``: entries that failed again after a replay (a ``dlq_attempts`` row);
    ``min_retries``: entries replayed at least that many times (retry_count)."""

    failed_again: bool = False
    min_retries: int | None = None

    def __bool__(self) -> bool:
        return self.failed_again or self.min_retries is not None


@dataclass(frozen=True)
class Refailures:
    """Later failures of one consumer's matching entries: how many entries failed again
    after a replay, and how many such failures (``dlq_attempts`` rows) were recorded."""

    entries: int
    attempts: int

    def to_json(self) -> dict[str, int]:
        return {"entries": self.entries, "attempts": self.attempts}


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
    # Consumers whose matching entries failed again after a replay.
    refailures: dict[str, Refailures] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(c.count for c in self.counts)

    @property
    def oldest_pending_failed_at(self) -> datetime | None:
        return min(self.oldest_pending.values(), default=None)

    def to_json(self, *, top: int) -> dict[str, Any]:
        """The stats object (docs/inspect.md); ``top`` error groups, the later failures,
        and the breakdown when asked."""
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
            "failed_again": {
                "entries": sum(r.entries for r in self.refailures.values()),
                "attempts": sum(r.attempts for r in self.refailures.values()),
                "by_consumer": {c: r.to_json() for c, r in sorted(self.refailures.items())},
            },
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
        """The write-command summary plus cleanup's own fields (see docs/operations.md)."""
        data = self.write.to_json()
        if self.write.action == "purge":
            data["older_than"] = self.older_than
            data["cutoff"] = iso_utc(self.cutoff)
        if self.ineligible_ids:
            data["ineligible_ids"] = [str(i) for i in self.ineligible_ids]
        if self.preview is not None:
            data.update(self.preview.to_json())
        return data
