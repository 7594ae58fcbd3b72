"""Turning a failed Kafka event into a DLQ entry: decoding, event ids, payloads, error text.

Pure logic, shared by the embedded consumer and the stand-alone DLQ writer (see
docs/consumer.md, "What an entry holds").
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from dlqctl.core.fingerprint import fingerprint
from dlqctl.core.models import Header

# The namespace of derived event ids (see docs/consumer.md, "What an entry holds").
EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "dlqctl:event-id")
# The JSON stand-in stored in event_payload for bytes jsonb cannot hold.
RAW_PAYLOAD_KEY = "_dlqctl_raw_base64"
# The payload of a tombstone (a message whose value is null; its event_raw stays NULL): replay
# sends a null value for it (see docs/consumer.md, "Tombstones").
TOMBSTONE_KEY = "_dlqctl_tombstone"
TOMBSTONE_PAYLOAD = json.dumps({TOMBSTONE_KEY: True})
MAX_ERROR_BYTES = 8192
# Headers replay adds to what it publishes (see docs/replay.md): a failure of a message that
# carries them links back to the entry they name (see docs/consumer.md, "Link-back").
REPLAY_ID_HEADER = "dlq-id"
REPLAY_CONSUMER_HEADER = "dlq-consumer"
MAX_CONSUMER_LENGTH = 255  # dlq.consumer is VARCHAR(255)

_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# A \uD800-\uDFFF escape: the only way JSON text can carry a (possibly lone) surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class KafkaMessage(Protocol):
    """What the writer reads from a consumed message (confluent_kafka.Message has it all)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Sequence[tuple[str, bytes | None]] | None: ...


class UndecodableEvent(ValueError):
    """The message cannot be handed to a handler or stored as jsonb."""


class _Missing:
    """Marks an event that could not be decoded at all."""


MISSING: Any = _Missing()


def _reject_constant(name: str) -> Any:
    raise UndecodableEvent(f"{name} is not valid JSON (PostgreSQL jsonb rejects it)")


# One decoder for every message: NaN/Infinity raise instead of becoming floats.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _has_unstorable_text(value: Any) -> bool:
    """Whether a decoded JSON value holds a NUL or a lone surrogate (jsonb rejects both)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or any("\ud800" <= ch <= "\udfff" for ch in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def decode_event(raw: bytes | None) -> Any:
    """The JSON value of a message's bytes; raises when they are not JSON that jsonb accepts.

    Raises UnicodeDecodeError (not UTF-8), json.JSONDecodeError (not JSON),
    UndecodableEvent (no value, NaN/Infinity, ``\\u0000``, lone surrogates) or another
    ValueError/RecursionError from the parser (absurd numbers or nesting).
    """
    if raw is None:
        raise UndecodableEvent("the message has no value (a tombstone)")
    value = _DECODER.decode(raw.decode("utf-8"))
    # Cheap byte scans first; the walk only runs for the rare message that may need it.
    if (b"\\u0000" in raw or _SURROGATE_ESCAPE.search(raw)) and _has_unstorable_text(value):
        raise UndecodableEvent(
            "the event contains \\u0000 or a lone surrogate, which PostgreSQL jsonb rejects"
        )
    return value


def derive_event_id(
    event: Any,
    raw: bytes | None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> UUID:
    """The event_id of an entry (see docs/consumer.md, "What an entry holds").

    The event's ``event_id`` field, else its ``id`` field (a null counts as absent): as is
    when it is a UUID in its canonical 8-4-4-4-12 text (any case), else
    ``uuid5(NS, str(value))``. With neither (or an undecodable event):
    ``uuid5(NS, f"{topic}/{partition}/{offset}/{sha256 hex of the bytes}")``, an unknown
    part written as the empty string.
    """
    if isinstance(event, dict):
        for field in ("event_id", "id"):
            value = event.get(field)
            if value is None:
                continue
            if isinstance(value, str) and len(value) == 36 and _CANONICAL_UUID.fullmatch(value):
                return UUID(value)
            return uuid5(EVENT_ID_NAMESPACE, str(value))
    digest = hashlib.sha256(raw or b"").hexdigest()
    parts = ("" if part is None else str(part) for part in (topic, partition, offset))
    return uuid5(EVENT_ID_NAMESPACE, "/".join((*parts, digest)))


def raw_stand_in(raw: bytes) -> str:
    """The jsonb text stored in event_payload for bytes jsonb cannot hold."""
    return json.dumps({RAW_PAYLOAD_KEY: base64.b64encode(raw).decode("ascii")})


def payload_json(event: Any) -> str | None:
    """Compact JSON text of a Python value if jsonb accepts it, else None."""
    if _has_unstorable_text(event):
        return None
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None


def error_text(error: BaseException | str) -> str:
    """``Type: message`` (just the text for a string), cut to 8 KB with a marker.

    NULs and lone surrogates, which a text column cannot hold, are escaped.
    """
    if isinstance(error, BaseException):
        message = str(error)
        name = type(error).__name__
        text = f"{name}: {message}" if message else name
    else:
        text = error
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_ERROR_BYTES:
        return text
    marker = f" … [cut: {len(encoded)} bytes in all]"
    keep = MAX_ERROR_BYTES - len(marker.encode("utf-8"))
    return encoded[:keep].decode("utf-8", "ignore") + marker


def check_consumer_name(consumer: str) -> str:
    """The consumer name, or ValueError if the dlq table cannot hold it."""
    if not consumer or not consumer.strip():
        raise ValueError("the consumer name must not be empty")
    if len(consumer) > MAX_CONSUMER_LENGTH:
        raise ValueError(f"the consumer name is longer than {MAX_CONSUMER_LENGTH} characters")
    if "\x00" in consumer:
        raise ValueError("the consumer name must not contain NUL")
    try:
        consumer.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 (a surrogate-escaped argv): no table or client takes them.
        raise ValueError("the consumer name is not valid UTF-8 text") from None
    return consumer


def _header_key(key: str | bytes) -> str:
    if isinstance(key, bytes):
        key = key.decode("utf-8", "backslashreplace")
    # jsonb cannot hold NUL or lone surrogates; such keys are kept escaped.
    return key.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class FailedEvent:
    """One DLQ entry to write: everything the writer inserts (retry_count is always 0)."""

    consumer: str
    event_id: UUID
    payload: str  # jsonb text
    error_message: str
    error_fingerprint: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    event_key: bytes | None = None
    event_headers: str | None = None  # jsonb text: [[key, base64 or null], ...]
    event_raw: bytes | None = None
    # The entry this event was replayed from, when the message names one of this consumer's
    # (its dlq-id and dlq-consumer headers): the writer links the failure back to it.
    replayed_from: UUID | None = None

    @property
    def source(self) -> str:
        """``topic[partition]@offset`` for log lines."""
        if self.source_topic is None:
            return "(no source)"
        return f"{self.source_topic}[{self.source_partition}]@{self.source_offset}"


def replayed_from(
    consumer: str, headers: Sequence[tuple[str | bytes, bytes | None]]
) -> UUID | None:
    """The entry id in a ``dlq-id`` header, when a ``dlq-consumer`` header names ``consumer``
    (the last of each counts; replay sends one of each). None for anything else."""
    entry_id: bytes | None = None
    named: bytes | None = None
    for key, value in headers:
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if name == REPLAY_ID_HEADER:
            entry_id = value
        elif name == REPLAY_CONSUMER_HEADER:
            named = value
    if entry_id is None or named is None or named != consumer.encode("utf-8"):
        return None
    try:
        text = entry_id.decode("ascii")
    except UnicodeDecodeError:
        return None
    if len(text) != 36 or not _CANONICAL_UUID.fullmatch(text):
        return None
    return UUID(text)


def _headers_json(message: KafkaMessage) -> str:
    # No headers is recorded as [] (consumed without headers), not as NULL (unknown).
    headers = message.headers() or ()
    pairs = [Header(_header_key(k), v).to_stored() for k, v in headers]
    return json.dumps(pairs)


def failed_event(
    consumer: str,
    event: Any,
    error: BaseException | str,
    message: KafkaMessage | None = None,
    *,
    payload: str | None = None,
) -> FailedEvent:
    """The DLQ entry for ``event`` that failed with ``error``.

    ``event`` is the decoded value, raw bytes, or MISSING (undecodable: the message's bytes
    are all there is). ``message`` gives the provenance and the exact bytes. ``payload``:
    jsonb text already known to be valid for the event (the consumer passes the bytes it
    decoded, which keeps numbers exactly as sent).
    """
    check_consumer_name(consumer)
    event_bytes: bytes | None = None
    if isinstance(event, bytes | bytearray | memoryview):
        given = bytes(event)
        event_bytes = given
        try:
            event = decode_event(given)
        except (ValueError, RecursionError):
            event = MISSING
        else:
            payload = payload or given.decode("utf-8")
    raw = message.value() if message is not None else event_bytes
    if message is not None and raw is None and (event is MISSING or event is None):
        # A tombstone: nothing to keep but the fact; the id hashes the (empty) bytes.
        return _entry(consumer, MISSING, TOMBSTONE_PAYLOAD, None, b"", error, message)
    if payload is None and event is not MISSING:
        payload = payload_json(event)
    if payload is None:
        if raw is None:
            if event is MISSING:
                raw = b""
            else:
                # Not JSON for jsonb and no bytes given: keep a textual rendering.
                rendered = json.dumps(event, default=repr, ensure_ascii=False)
                raw = rendered.encode("utf-8", "surrogatepass")
        payload = raw_stand_in(raw)
    # A decoded event with no bytes given: its compact JSON is what the id hashes.
    raw_for_id = payload.encode("utf-8") if raw is None else raw
    return _entry(consumer, event, payload, raw, raw_for_id, error, message)


def _entry(
    consumer: str,
    event: Any,
    payload: str,
    raw: bytes | None,
    raw_for_id: bytes,
    error: BaseException | str,
    message: KafkaMessage | None,
) -> FailedEvent:
    topic = message.topic() if message is not None else None
    partition = message.partition() if message is not None else None
    offset = message.offset() if message is not None else None
    text = error_text(error)
    return FailedEvent(
        consumer=consumer,
        event_id=derive_event_id(event, raw_for_id, topic, partition, offset),
        payload=payload,
        error_message=text,
        error_fingerprint=fingerprint(text),
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        event_key=message.key() if message is not None else None,
        event_headers=_headers_json(message) if message is not None else None,
        event_raw=raw,
        replayed_from=replayed_from(consumer, message.headers() or ())
        if message is not None
        else None,
    )
