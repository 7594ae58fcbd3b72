"""Canary replays, the pure part: the request, where the canary went, the verdict.

A canary run replays the first N entries of its selection, waits (for a consumer group to
commit past them, or a fixed time), then checks whether any of them failed again before it
sends the rest (see docs/replay.md, "Canary").
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from dlqctl.core.errors import UsageError

DEFAULT_CANARY_WAIT = timedelta(minutes=2)

TopicPartitionKey = tuple[str, int]


class CanaryOutcome(enum.StrEnum):
    """How a canary ended: none failed again (and, with a group, all were processed); some
    failed again; or the group did not get past them in time (or the wait was cut short)."""

    PASSED = "passed"
    REFAILED = "refailed"
    NOT_PROCESSED = "not-processed"


@dataclass(frozen=True)
class Canary:
    """``--canary N [--canary-group G] [--canary-wait DURATION]``."""

    size: int
    group: str | None = None
    wait: timedelta = DEFAULT_CANARY_WAIT
    # The wait as the operator wrote it (``5m``); by default from ``wait``.
    wait_text: str | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise UsageError("--canary must be at least 1")
        if self.group is not None and not self.group.strip():
            raise UsageError("--canary-group must not be empty")
        if self.wait <= timedelta(0):
            raise UsageError("--canary-wait must be longer than zero")
        if self.wait_text is None:
            object.__setattr__(self, "wait_text", duration_text(self.wait))

    @property
    def wait_label(self) -> str:
        return self.wait_text or duration_text(self.wait)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "group": self.group, "wait": self.wait_label}


def duration_text(delta: timedelta) -> str:
    """``2m``, ``90s``, ``1h``: the largest unit that divides it (seconds at least)."""
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class CanaryMessage:
    """One canary entry as it was delivered: where, and the attempt a re-failure records."""

    dlq_id: UUID
    consumer: str
    event_id: UUID
    attempt: int  # the entry's retry_count after this replay (dlq_attempts.attempt)
    topic: str
    partition: int
    offset: int


def targets(messages: Iterable[CanaryMessage]) -> dict[TopicPartitionKey, int]:
    """Per partition, the committed offset a group must reach to be past every canary
    message on it (the last one's offset + 1)."""
    result: dict[TopicPartitionKey, int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        result[key] = max(result.get(key, 0), m.offset + 1)
    return result


def behind(
    wanted: Mapping[TopicPartitionKey, int], committed: Mapping[TopicPartitionKey, int]
) -> dict[TopicPartitionKey, tuple[int, int]]:
    """Partitions the group has not committed past yet: (committed, wanted); a partition
    without a committed offset counts as -1."""
    return {
        tp: (committed.get(tp, -1), offset)
        for tp, offset in sorted(wanted.items())
        if committed.get(tp, -1) < offset
    }


def describe_positions(lagging: Mapping[TopicPartitionKey, tuple[int, int]]) -> str:
    """``orders[0] at 10 of 12, orders[2] not committed`` for one line of progress."""
    parts = []
    for (topic, partition), (committed, wanted) in lagging.items():
        at = "nothing committed" if committed < 0 else f"committed {committed}"
        parts.append(f"{topic}[{partition}] {at}, needs {wanted}")
    return "; ".join(parts)


def refailed_ids(
    messages: Iterable[CanaryMessage],
    attempts: Iterable[tuple[UUID, int]],
    same_events: Iterable[tuple[UUID, str, UUID]],
    known: Iterable[UUID],
) -> list[UUID]:
    """The canary entries that failed again, in canary order.

    ``attempts``: (dlq_id, attempt) rows of dlq_attempts for the canary entries; one whose
    attempt is at least the entry's retry_count after this replay is a re-failure linked
    back (the attempt number, not a timestamp: a consumer that waited for the replay's row
    lock records a failed_at older than the replay's commit). ``same_events``: (dlq_id,
    consumer, event_id) of entries with a canary's event_id; one of the same consumer that
    was not ``known`` before the canary was sent is a re-failure another writer stored.
    """
    messages = list(messages)
    wanted = {m.dlq_id: m.attempt for m in messages}
    failed = {dlq_id for dlq_id, attempt in attempts if attempt >= wanted.get(dlq_id, attempt + 1)}
    known_ids = set(known)
    by_event = {(m.consumer, m.event_id): m.dlq_id for m in messages}
    for dlq_id, consumer, event_id in same_events:
        canary_id = by_event.get((consumer, event_id))
        if canary_id is not None and dlq_id != canary_id and dlq_id not in known_ids:
            failed.add(canary_id)
    return [m.dlq_id for m in messages if m.dlq_id in failed]


@dataclass(frozen=True)
class CanaryReport:
    """What the canary did: how many entries it sent, which failed again, the verdict."""

    size: int
    refailed: tuple[UUID, ...]
    outcome: CanaryOutcome
    group: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "refailed": [str(i) for i in self.refailed],
            "outcome": self.outcome.value,
        }
