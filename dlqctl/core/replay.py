"""Replay's pure parts: the request, the plan, topic resolution and the message put on Kafka.

The message (see docs/replay.md, "The message"): key = the original key if recorded, else
the event_id as canonical lowercase UUID text; value = the edited bytes if the entry was
edited, else the original bytes if recorded, else compact JSON of event_payload (a stored
tombstone: a null value); headers = the edited headers if edited, else the original ones
(earlier ``dlq-*`` headers dropped either way) plus ``dlq-id``, ``dlq-consumer`` and
``dlq-retry-count`` (the retry_count after this replay).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlqctl.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from dlqctl.core.events import TOMBSTONE_PAYLOAD
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Header, Status, WriteResult
from dlqctl.core.runs import RunPlan

if TYPE_CHECKING:
    from pathlib import Path
    from uuid import UUID

    from dlqctl.core.canary import Canary, CanaryReport
    from dlqctl.core.plans import PlanFile, PlanSummary

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
    # The first ``canary.size`` entries first, then a wait and a check (docs/replay.md).
    canary: Canary | None = None
    # Replay exactly the entries of this plan, to its topics (no filter, topic or limit).
    plan: PlanFile | None = None
    # With dry_run: write the selection to this file as a plan.
    plan_out: Path | None = None

    def __post_init__(self) -> None:
        if self.topic is not None:
            validate_topic_name(self.topic, "--topic")
        if self.plan is not None:
            given = [
                name
                for name, value in (
                    ("ids or filters", self.entry_filter != EntryFilter()),
                    ("--topic", self.topic is not None),
                    ("--limit", self.limit is not None),
                    ("--plan-out", self.plan_out is not None),
                )
                if value
            ]
            if given:
                raise UsageError(
                    f"--plan replays exactly the entries of the plan, to the topics it names:"
                    f" {' and '.join(given)} cannot be given with it"
                )
        if self.plan_out is not None and not self.dry_run:
            raise UsageError(
                "--plan-out writes a plan instead of replaying: give it with --dry-run"
            )

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
    # A plan run: how many entries the plan lists (the counts above are those still
    # unchanged), the plan's summary, and the entries that changed since it was made.
    listed: int | None = None
    plan: PlanSummary | None = None
    plan_skips: tuple[tuple[UUID, str], ...] = ()

    @property
    def matched(self) -> int:
        """Entries the run was asked for (a plan's: every entry it lists)."""
        return self.total if self.listed is None else self.listed

    @property
    def topics(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for route in self.routes:
            totals[route.topic] = totals.get(route.topic, 0) + route.count
        return dict(sorted(totals.items()))


@dataclass
class ReplayReport:
    """The outcome of a run: the write-command result (docs/operations.md), the plan it
    worked from, and (when it failed or was interrupted) one line saying why."""

    result: WriteResult
    plan: ReplayPlan
    error: str | None = None
    canary: CanaryReport | None = None
    # Entries not sent, with the reason (a plan run: changed since the plan was made).
    skips: tuple[tuple[UUID, str], ...] = ()
    # A dry run with --plan-out: the plan it wrote, and where.
    plan_file: PlanFile | None = None
    plan_path: Path | None = None

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


def message_key(event_key: bytes | None, event_id: str) -> bytes | str:
    """The original key, else the event_id (canonical lowercase UUID text)."""
    return event_key if event_key is not None else event_id


def message_value(
    event_raw: bytes | None, payload_text: str | None, edited_raw: bytes | None = None
) -> bytes | str | None:
    """The edited bytes, else the original bytes, else compact JSON of the payload (given as
    jsonb text); None (a null value) for a stored tombstone (see docs/consumer.md,
    "Tombstones")."""
    if edited_raw is not None:
        return edited_raw
    if event_raw is not None:
        return event_raw
    if payload_text is None:
        raise ValueError("an entry without event_raw needs its payload")
    value = compact_jsonb_text(payload_text)
    return None if value == _TOMBSTONE_VALUE else value


_TOMBSTONE_VALUE = compact_jsonb_text(TOMBSTONE_PAYLOAD)


def message_headers(
    stored: Sequence[Sequence[Any]] | None,
    dlq_id: str,
    consumer: str,
    retry_count_after: int,
    edited: Sequence[Sequence[Any]] | None = None,
) -> Headers:
    """The edited headers if any, else the stored ones (order and duplicates kept, earlier
    ``dlq-*`` dropped), plus ours."""
    ours: Headers = [
        (HEADER_ID, dlq_id),
        (HEADER_CONSUMER, consumer),
        (HEADER_RETRY_COUNT, str(retry_count_after)),
    ]
    if edited is not None:
        stored = edited
    if not stored:
        return ours
    return kept_headers(stored) + ours


def kept_headers(stored: Sequence[Sequence[Any]] | None) -> Headers:
    """Stored headers (``event_headers`` format) as published: earlier ``dlq-*`` dropped."""
    if not stored:
        return []
    headers = (Header.from_stored(pair) for pair in stored)
    return [(h.key, h.value) for h in headers if not h.key.startswith(DLQ_HEADER_PREFIX)]


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
