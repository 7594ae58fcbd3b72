"""Replay plans: a selection frozen into a file that can be reviewed, then replayed exactly.

The file (see docs/replay.md, "Plans") is one JSON object: ``version``, ``created_at``,
``actor``, ``host``, ``filter``, ``entries`` (``dlq_id``, ``consumer``, ``topic``,
``status``, ``retry_count``, ``value_sha256``, ``headers_sha256``) and ``checksum``: the
sha256 (hex) of the canonical JSON of everything else — keys sorted, no whitespace, UTF-8 —
so that ``jq -jcS 'del(.checksum)' FILE | sha256sum`` prints it too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from dlqctl.core.errors import UsageError
from dlqctl.core.models import Status, iso_utc
from dlqctl.core.replay import Headers, validate_topic_name
from dlqctl.core.timeparse import humanize_age, parse_time

PLAN_VERSION = 1
# How much of the checksum a prompt or a review shows.
CHECKSUM_PREFIX = 12
_SHA256_HEX = frozenset("0123456789abcdef")


def canonical_json(value: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8 (what the checksum is computed over)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def value_sha256(value: bytes | str | None) -> str | None:
    """The sha256 of exactly the value bytes replay publishes; None for a null value."""
    if value is None:
        return None
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def headers_sha256(headers: Headers) -> str:
    """The sha256 of the headers replay publishes besides its own ``dlq-*`` ones (the
    canonical JSON of ``[key, base64 value or null]`` pairs, in order)."""
    if not headers:
        return _NO_HEADERS
    pairs = []
    for key, value in headers:
        if isinstance(value, str):
            value = value.encode("utf-8")
        pairs.append([key, None if value is None else base64.b64encode(value).decode("ascii")])
    return hashlib.sha256(canonical_json(pairs)).hexdigest()


_NO_HEADERS = hashlib.sha256(canonical_json([])).hexdigest()


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One entry of a plan: what it was when the plan was made, and where it goes."""

    dlq_id: UUID
    consumer: str
    topic: str
    status: Status
    retry_count: int
    value_sha256: str | None
    headers_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dlq_id": str(self.dlq_id),
            "consumer": self.consumer,
            "topic": self.topic,
            "status": self.status.value,
            "retry_count": self.retry_count,
            "value_sha256": self.value_sha256,
        }
        if self.headers_sha256 is not None:
            data["headers_sha256"] = self.headers_sha256
        return data

    def changes(
        self,
        status: Status,
        retry_count: int,
        value_hash: str | None,
        headers_hash: str,
    ) -> str | None:
        """Why the entry may not be sent (what changed since the plan was made), or None."""
        changed = self._state_changes(status, retry_count)
        if value_hash != self.value_sha256:
            changed.append("value (edited?)")
        if self.headers_sha256 is not None and headers_hash != self.headers_sha256:
            changed.append("headers (edited?)")
        return _changed(changed)

    def state_changes(self, status: Status, retry_count: int) -> str | None:
        """Like ``changes``, for status and retry_count only (a quick look before a run)."""
        return _changed(self._state_changes(status, retry_count))

    def _state_changes(self, status: Status, retry_count: int) -> list[str]:
        changed = []
        if status is not self.status:
            changed.append(f"status {self.status.value} → {status.value}")
        if retry_count != self.retry_count:
            changed.append(f"retry_count {self.retry_count} → {retry_count}")
        return changed


def _changed(changed: list[str]) -> str | None:
    return "changed since the plan was made: " + ", ".join(changed) if changed else None


@dataclass(frozen=True)
class PlanFile:
    """A replay plan as written to (or read from) its file."""

    created_at: datetime
    actor: str
    host: str
    filter: dict[str, Any]
    entries: tuple[PlanEntry, ...]
    version: int = PLAN_VERSION

    def body(self) -> dict[str, Any]:
        """Everything but the checksum."""
        return {
            "version": self.version,
            "created_at": iso_utc(self.created_at),
            "actor": self.actor,
            "host": self.host,
            "filter": self.filter,
            "entries": [e.to_json() for e in self.entries],
        }

    @functools.cached_property
    def checksum(self) -> str:
        return body_checksum(self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "checksum": self.checksum}

    def render(self) -> str:
        """The file's text: one entry per line, readable in a diff or a ticket."""
        body = self.body()
        lines = ["{"]
        for key in ("version", "created_at", "actor", "host", "filter"):
            lines.append(f"  {json.dumps(key)}: {_compact(body[key])},")
        lines.append('  "entries": [')
        entries = body["entries"]
        for i, item in enumerate(entries):
            lines.append(f"    {_compact(item)}{',' if i < len(entries) - 1 else ''}")
        lines.append("  ],")
        lines.append(f'  "checksum": {json.dumps(self.checksum)}')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def summary(self) -> PlanSummary:
        return PlanSummary(
            checksum=self.checksum,
            created_at=self.created_at,
            actor=self.actor,
            host=self.host,
            size=len(self.entries),
        )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


@dataclass(frozen=True)
class PlanSummary:
    """What a prompt or a review shows of a plan: checksum prefix, author, age, size."""

    checksum: str
    created_at: datetime
    actor: str
    host: str
    size: int

    @property
    def checksum_prefix(self) -> str:
        return self.checksum[:CHECKSUM_PREFIX]

    def age(self, now: datetime) -> str:
        return humanize_age(now - self.created_at)

    def describe(self, now: datetime) -> str:
        """``plan 3f2a9c41d0e7 by alice on host-1, made 2h ago: 120 entries``."""
        return (
            f"plan {self.checksum_prefix} by {self.actor} on {self.host}, made"
            f" {self.age(now)} ago ({iso_utc(self.created_at)}): {self.size} entries"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "checksum": self.checksum,
            "created_at": iso_utc(self.created_at),
            "actor": self.actor,
            "host": self.host,
            "entries": self.size,
        }


def parse_plan(text: str, where: str) -> PlanFile:
    """The plan in ``text`` (read from ``where``); UsageError when it is malformed or its
    checksum does not match its content (nothing may be sent from it)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"plan {where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"plan {where} is malformed: not a JSON object")
    checksum = data.pop("checksum", None)
    if checksum != body_checksum(data):
        raise UsageError(
            f"plan {where} was changed after it was made (its checksum does not match its"
            " content): nothing is sent; make a new plan with --dry-run --plan-out"
        )
    try:
        plan = _plan_from_body(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"plan {where} is malformed: {_reason(exc)}") from None
    plan.__dict__["checksum"] = checksum  # the same content: no need to hash it again
    return plan


def body_checksum(body: dict[str, Any]) -> str:
    """The sha256 of ``canonical_json(body)``, computed an entry at a time (a plan of a
    million entries is never one string in memory)."""
    digest = hashlib.sha256(b"{")
    for n, key in enumerate(sorted(body)):
        digest.update(b"," if n else b"")
        digest.update(canonical_json(key) + b":")
        value = body[key]
        if key == "entries" and isinstance(value, list):
            digest.update(b"[")
            for i, item in enumerate(value):
                digest.update(b"," + canonical_json(item) if i else canonical_json(item))
            digest.update(b"]")
        else:
            digest.update(canonical_json(value))
    digest.update(b"}")
    return digest.hexdigest()


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


_NOT_AS_WRITTEN = (
    "it is not in the form dlqctl writes (unknown fields, or values spelled differently)"
)


def _plan_from_body(body: dict[str, Any]) -> PlanFile:
    """The plan; ValueError (or KeyError, TypeError) when the body is not one that dlqctl
    wrote: it must read back exactly as it is (no unknown fields, the same spellings).
    The entries are taken out of ``body`` as they are parsed (memory)."""
    version = body["version"]
    if version != PLAN_VERSION:
        raise ValueError(f"version {version!r} is not supported (this dlqctl reads version 1)")
    fields = {"version", "created_at", "actor", "host", "filter", "entries"}
    missing = sorted(fields - set(body))
    if missing:
        raise KeyError(missing[0])
    if set(body) != fields:
        raise ValueError(_NOT_AS_WRITTEN)
    filter_ = body["filter"]
    if not isinstance(filter_, dict):
        raise TypeError("filter is not an object")
    entries = body["entries"]
    if not isinstance(entries, list):
        raise TypeError("entries is not a list")
    parsed = []
    for n in range(len(entries)):
        item, entries[n] = entries[n], None
        entry = _entry(item, n)
        if entry.to_json() != item:
            raise ValueError(f"entry {n}: {_NOT_AS_WRITTEN}")
        parsed.append(entry)
    if len({e.dlq_id for e in parsed}) != len(parsed):
        raise ValueError("an entry is listed twice")
    created_at = parse_time(_text(body, "created_at"))
    if iso_utc(created_at) != body["created_at"]:
        raise ValueError(f"created_at: {_NOT_AS_WRITTEN}")
    return PlanFile(
        created_at=created_at,
        actor=_text(body, "actor"),
        host=_text(body, "host"),
        filter=filter_,
        entries=tuple(parsed),
        version=version,
    )


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _hash(value: Any, key: str, *, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _SHA256_HEX:
        raise ValueError(f"{key} is not a sha256 hex digest")
    return value


def _entry(item: Any, n: int) -> PlanEntry:
    if not isinstance(item, dict):
        raise TypeError(f"entry {n} is not an object")
    retry_count = item["retry_count"]
    if not isinstance(retry_count, int) or isinstance(retry_count, bool) or retry_count < 0:
        raise ValueError(f"entry {n}: retry_count is not a count")
    topic = _text(item, "topic")
    try:
        validate_topic_name(topic, f"entry {n}")
    except UsageError as exc:
        raise ValueError(exc.message) from None
    return PlanEntry(
        dlq_id=UUID(_text(item, "dlq_id")),
        consumer=_text(item, "consumer"),
        topic=topic,
        status=Status(_text(item, "status")),
        retry_count=retry_count,
        value_sha256=_hash(item["value_sha256"], "value_sha256", nullable=True),
        headers_sha256=(
            _hash(item["headers_sha256"], "headers_sha256", nullable=False)
            if "headers_sha256" in item
            else None
        ),
    )


def entries_by_route(entries: Sequence[PlanEntry]) -> dict[tuple[str, str], int]:
    """How many entries of each consumer go to each topic."""
    routes: dict[tuple[str, str], int] = {}
    for e in entries:
        routes[(e.consumer, e.topic)] = routes.get((e.consumer, e.topic), 0) + 1
    return dict(sorted(routes.items()))
