"""Replay's pure parts: the request, the plan, topic resolution and the message put on Kafka.

SPEC §5: key = the original key if recorded, else the event_id as canonical lowercase UUID
text; value = the original bytes if recorded, else compact JSON of event_payload; headers =
the original headers (earlier ``dlq-*`` headers dropped) plus ``dlq-id``, ``dlq-consumer`` and
``dlq-retry-count`` (the retry_count after this replay).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlqctl.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from dlqctl.core.events import TOMBSTONE_PAYLOAD
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Header, Status, WriteResult
from dlqctl.core.runs import RunPlan

DLQ_HEADER_PREFIX = "dlq-"
HEADER_ID = "dlq-id"
HEADER_CONSUMER = "dlq-consumer"
HEADER_RETRY_COUNT = "dlq-retry-count"

# librdkafka's own default for the producer's message.max.bytes.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
# RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: the record's varint lengths, attributes and deltas.
RECORD_OVERHEAD = 36
# Per header: the two varint lengths (at most 5 bytes each).
HEADER_OVERHEAD = 10
MAX_LISTED_IDS = 20

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# A JSON string literal as jsonb prints it (escapes kept as they are).
_JSON_STRING_OR_SPACE = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")| +')

Headers = list[tuple[str, bytes | str | None]]


@dataclass(frozen=True)
class ReplayRequest:
    """A replay: the entries ``entry_filter`` selects (pending ones unless it names statuses),
    and how they are sent (see dlqctl.core.runs for the shape every batch run shares)."""

    entry_filter: EntryFilter
    topic: str | None = None
    rate: float | None = None
    batch_size: int = 1000
    limit: int | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.topic is not None:
            validate_topic_name(self.topic, "--topic")

    @property
    def statuses(self) -> tuple[Status, ...]:
        """The statuses given, else pending."""
        return self.entry_filter.statuses or (Status.PENDING,)

    @property
    def selection(self) -> EntryFilter:
        """The filter with the eligible statuses applied (explicit ids kept)."""
        return self.entry_filter.with_statuses(self.statuses)

    def effective_batch_size(self) -> int:
        """With --rate, a batch holds at most about one second of messages, so that its
        transaction (and an interrupt) never waits long."""
        if self.rate is None:
            return self.batch_size
        return max(1, min(self.batch_size, int(self.rate)))


@dataclass(frozen=True)
class TopicCount:
    """How many selected entries of one consumer go to one topic."""

    consumer: str
    topic: str
    count: int


@dataclass(frozen=True)
class ReplayPlan(RunPlan):
    """What a run is about to do, counted before anything is sent: the counts per consumer
    and status, and per consumer and target topic."""

    routes: tuple[TopicCount, ...] = ()

    @property
    def topics(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for route in self.routes:
            totals[route.topic] = totals.get(route.topic, 0) + route.count
        return dict(sorted(totals.items()))


@dataclass
class ReplayReport:
    """The outcome of a run: the SPEC §4 result, the plan it worked from, and (when it
    failed or was interrupted) one line saying why."""

    result: WriteResult
    plan: ReplayPlan
    error: str | None = None

    @property
    def exit_code(self) -> int:
        if self.result.outcome == "interrupted":
            return EXIT_INTERRUPTED
        if self.result.outcome == "failed" or self.result.failed:
            return EXIT_FAILED
        return EXIT_OK


class RateLimiter:
    """Spaces messages ``1 / rate`` seconds apart (after an idle pause, at most one extra
    message goes at once). ``wait`` sleeps and may return early (a stop event's wait)."""

    def __init__(
        self,
        rate: float,
        *,
        wait: Callable[[float], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / rate
        self._wait = wait
        self._clock = clock
        self.next_at = clock()

    def pace(self) -> None:
        """Return when the next message may go."""
        delay = self.next_at - self._clock()
        if delay > 0:
            self._wait(delay)
        self.next_at = max(self.next_at, self._clock() - self.interval) + self.interval


def validate_topic_name(topic: str, where: str) -> str:
    """The topic, or UsageError when Kafka would reject the name."""
    if not _TOPIC_NAME.match(topic) or topic in (".", ".."):
        raise UsageError(
            f"{where}: {topic!r} is not a valid Kafka topic name"
            " (1-249 characters of letters, digits, '.', '_' and '-')"
        )
    return topic


def resolve_topic(
    override: str | None, source_topic: str | None, consumer: str, topic_map: Mapping[str, str]
) -> str | None:
    """--topic > the topic the event was consumed from > the settings' map (None: unknown)."""
    return override or source_topic or topic_map.get(consumer)


def missing_topic_error(consumers: Sequence[str]) -> UsageError:
    names = ", ".join(sorted(set(consumers)))
    return UsageError(
        f"no target topic for entries of consumer(s) {names}: they have no recorded source"
        " topic; pass --topic, or map the consumer in DLQCTL_TOPIC_MAP / [topics] of the config"
        " file"
    )


def compact_jsonb_text(text: str) -> str:
    """jsonb's text output (``{"a": 1, "b": [1, 2]}``) without the spaces it puts after
    ``,`` and ``:``: compact JSON, with every number and escape exactly as jsonb printed it.

    jsonb prints no other whitespace outside strings, so the fast path removes the spaces
    between string literals; a string with an escaped quote needs the tokenising path.
    """
    if '\\"' in text:
        return _JSON_STRING_OR_SPACE.sub(r"\1", text)
    parts = text.split('"')
    parts[::2] = [part.replace(" ", "") for part in parts[::2]]
    return '"'.join(parts)


# Compared with every payload replay sends: computed once.
_COMPACT_TOMBSTONE = compact_jsonb_text(TOMBSTONE_PAYLOAD)


def message_key(event_key: bytes | None, event_id: str) -> bytes | str:
    """The original key, else the event_id (canonical lowercase UUID text)."""
    return event_key if event_key is not None else event_id


def message_value(event_raw: bytes | None, payload_text: str | None) -> bytes | str | None:
    """The original bytes, else compact JSON of the payload (given as jsonb text); None (a
    null value) for a stored tombstone (see docs/consumer.md, "Tombstones")."""
    if event_raw is not None:
        return event_raw
    if payload_text is None:
        raise ValueError("an entry without event_raw needs its payload")
    value = compact_jsonb_text(payload_text)
    return None if value == _COMPACT_TOMBSTONE else value


def message_headers(
    stored: Sequence[Sequence[Any]] | None, dlq_id: str, consumer: str, retry_count_after: int
) -> Headers:
    """The stored headers (order and duplicates kept, earlier ``dlq-*`` dropped) plus ours."""
    ours: Headers = [
        (HEADER_ID, dlq_id),
        (HEADER_CONSUMER, consumer),
        (HEADER_RETRY_COUNT, str(retry_count_after)),
    ]
    if not stored:
        return ours
    headers = (Header.from_stored(pair) for pair in stored)
    kept: Headers = [(h.key, h.value) for h in headers if not h.key.startswith(DLQ_HEADER_PREFIX)]
    return kept + ours


def _size(value: bytes | str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(value)


def wire_size(key: bytes | str, value: bytes | str | None, headers: Headers) -> int:
    """The size librdkafka compares with message.max.bytes (its upper bound for a record)."""
    size = RECORD_OVERHEAD + _size(key) + _size(value)
    for name, header_value in headers:
        size += HEADER_OVERHEAD + _size(name) + _size(header_value)
    return size


def list_ids(ids: Sequence[str], limit: int = MAX_LISTED_IDS) -> str:
    """Ids for one line of text: the first ``limit`` and how many more."""
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
