"""``dlqctl edit``'s pure parts: the request, what kind of value an entry holds, header edits,
the text an editor gets and what its saved file means, and the result (see docs/edit.md).

An edit changes what replay publishes, never the original: the new value goes to
``edited_raw``, the new headers to ``edited_headers``. Kinds of value, decided by the
original message:

- ``json``: the original value is JSON (valid UTF-8, strict JSON). An edit must be JSON
  too; the editor gets it pretty-printed and what is saved is stored compact (whitespace
  between tokens removed, every token kept as written).
- ``text`` / ``binary``: the consumer could not store the value as JSON (the payload is the
  ``{"_dlqctl_raw_base64": ...}`` stand-in). An edit is raw bytes, taken as they are; the
  editor opens it only when the current value is UTF-8 text (``text``).
- ``tombstone``: the original value was null. It has no value to edit (an edit would turn
  a delete into an update); its headers can be edited.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from dlqctl.core import jsontext
from dlqctl.core.errors import UsageError
from dlqctl.core.ids import IdSelector
from dlqctl.core.models import Header, Status, iso_utc
from dlqctl.core.replay import DLQ_HEADER_PREFIX

# The most a value read from a file or stdin may hold (Kafka's default limit is 1 MB).
MAX_VALUE_BYTES = 64 * 1024 * 1024


class EditRefused(UsageError):
    """The edit was refused: nothing changed."""


class ValueKind(enum.StrEnum):
    """What the original value of an entry is, which decides how it may be edited."""

    JSON = "json"
    TEXT = "text"
    BINARY = "binary"
    TOMBSTONE = "tombstone"


def value_kind(original: bytes | None) -> ValueKind:
    """The kind of an entry's original value (``None``: a tombstone's null value)."""
    if original is None:
        return ValueKind.TOMBSTONE
    if jsontext.is_json(original):
        return ValueKind.JSON
    try:
        original.decode("utf-8")
    except UnicodeDecodeError:
        return ValueKind.BINARY
    return ValueKind.TEXT


# --- headers -------------------------------------------------------------------------------


def parse_set_header(text: str) -> tuple[str, str]:
    """``K=V`` as (key, value); the value may be empty and may contain ``=``."""
    key, equals, value = text.partition("=")
    if not equals:
        raise UsageError(f"--set-header {text!r}: give it as KEY=VALUE")
    return check_header_key(key, "--set-header"), value


def check_header_key(key: str, option: str) -> str:
    """The key, or UsageError: empty, or one of replay's own ``dlq-*`` headers."""
    if not key:
        raise UsageError(f"{option}: the header key must not be empty")
    if key.lower().startswith(DLQ_HEADER_PREFIX):
        raise UsageError(
            f"{option} {key!r}: dlq-* headers are replay's own (dlq-id, dlq-consumer,"
            " dlq-retry-count); replay sets them on every message"
        )
    return key


def edit_headers(
    base: Sequence[Header], set_: Sequence[tuple[str, str]], unset: Sequence[str]
) -> tuple[Header, ...]:
    """``base`` with every header named in ``unset`` removed, then each ``set_`` applied: it
    replaces the first header of that key (later duplicates are dropped) or is appended.
    Order and duplicates of the other headers are kept."""
    headers = [h for h in base if h.key not in set(unset)]
    for key, value in set_:
        new = Header(key, value.encode("utf-8"))
        at = next((i for i, h in enumerate(headers) if h.key == key), None)
        if at is None:
            headers.append(new)
        else:
            headers = [h for i, h in enumerate(headers) if i == at or h.key != key]
            headers[at] = new
    return tuple(headers)


def without_dlq_headers(headers: Sequence[Header] | None) -> tuple[Header, ...]:
    """The headers replay publishes besides its own (earlier ``dlq-*`` ones dropped)."""
    return tuple(h for h in headers or () if not h.key.startswith(DLQ_HEADER_PREFIX))


# --- the editor ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedText:
    """What an editor session left: the file's bytes as saved, where the file is, and what
    was written into it before the editor opened."""

    data: bytes
    path: Path
    written: bytes


class TextEditor(Protocol):
    """Opens ``text`` in an editor (a file named with ``name`` and ``suffix``) and returns
    what was saved; raises a DlqctlError when the editor cannot run or fails."""

    def __call__(self, text: str, *, name: str, suffix: str) -> SavedText: ...


def editor_text(kind: ValueKind, current: bytes | None, dlq_id: UUID) -> tuple[str, str]:
    """(text, file suffix) an editor opens for an entry whose value replay sends now is
    ``current``; EditRefused when that value cannot be edited as text."""
    if kind is ValueKind.TOMBSTONE or current is None:
        raise EditRefused(tombstone_message(dlq_id))
    if kind is ValueKind.JSON:
        return jsontext.pretty(jsontext.decode_utf8(current)) + "\n", ".json"
    try:
        return current.decode("utf-8"), ".txt"
    except UnicodeDecodeError:
        raise EditRefused(
            f"the value of entry {dlq_id} is binary (not UTF-8 text) and cannot be edited in"
            " an editor: write the new bytes to a file and pass it with --from-file"
        ) from None


def value_from_editor(kind: ValueKind, saved: SavedText) -> bytes | None:
    """The new value an editor session saved; None when nothing changes (the file was saved
    as it was written, or emptied). JsonTextError when a JSON value is no longer JSON."""
    if saved.data == saved.written or not saved.data.strip():
        return None
    if kind is ValueKind.JSON:
        text = jsontext.decode_utf8(saved.data)
        jsontext.parse(text)
        return jsontext.compact(text).encode("utf-8")
    data = saved.data
    # Editors end the file with a newline; the value did not have one.
    if not saved.written.endswith(b"\n") and data.endswith(b"\n"):
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
    return data


def value_from_file(kind: ValueKind, data: bytes, source: str, dlq_id: UUID) -> bytes:
    """The new value read from a file or stdin, exactly as given; EditRefused when the
    entry's value is a tombstone or was JSON and ``data`` is not."""
    if kind is ValueKind.TOMBSTONE:
        raise EditRefused(tombstone_message(dlq_id))
    if not data:
        raise EditRefused(f"{source} is empty: nothing changes (--revert drops an edit)")
    if kind is ValueKind.JSON:
        try:
            jsontext.parse(data)
        except jsontext.JsonTextError as exc:
            raise EditRefused(not_json_message(source, exc)) from None
    return data


def tombstone_message(dlq_id: UUID) -> str:
    return (
        f"entry {dlq_id} is a tombstone (its value was null): it has no value to edit;"
        " its headers can be edited with --set-header / --unset-header"
    )


def not_json_message(source: str, exc: jsontext.JsonTextError) -> str:
    return f"{source} is not valid JSON at {exc} (the entry's value is JSON and must stay JSON)"


# --- request and result --------------------------------------------------------------------


@dataclass(frozen=True)
class EditRequest:
    """One edit of one entry: a new value (from a file, or the editor when none of the other
    fields is given), header changes, or dropping the edit (``revert``)."""

    selector: IdSelector
    value: bytes | None = None
    # Where ``value`` came from, for messages: a path or "stdin".
    value_source: str | None = None
    set_headers: tuple[tuple[str, str], ...] = ()
    unset_headers: tuple[str, ...] = ()
    revert: bool = False

    def __post_init__(self) -> None:
        if self.revert and (self.value is not None or self.set_headers or self.unset_headers):
            raise UsageError(
                "--revert drops the whole edit: it cannot be given with --from-file,"
                " --set-header or --unset-header"
            )
        for key in self.unset_headers:
            check_header_key(key, "--unset-header")
        for key, _ in self.set_headers:
            check_header_key(key, "--set-header")
        both = {k for k, _ in self.set_headers} & set(self.unset_headers)
        if both:
            raise UsageError(
                f"header {sorted(both)[0]!r} is both set and unset: give one of"
                " --set-header / --unset-header for it"
            )

    @property
    def needs_editor(self) -> bool:
        """Nothing was given but the id: the value opens in an editor."""
        return not (self.revert or self.value is not None or self.set_headers or self.unset_headers)


@dataclass(frozen=True)
class EditTarget:
    """An entry as an edit sees it: its status, its original message, and its edit."""

    dlq_id: UUID
    consumer: str
    status: Status
    original_value: bytes | None
    original_headers: tuple[Header, ...]
    edited_raw: bytes | None
    edited_headers: tuple[Header, ...] | None
    edited_at: datetime | None
    edited_by: str | None

    @property
    def kind(self) -> ValueKind:
        return value_kind(self.original_value)

    @property
    def value(self) -> bytes | None:
        """The value replay sends now."""
        return self.edited_raw if self.edited_raw is not None else self.original_value

    @property
    def headers(self) -> tuple[Header, ...]:
        """The headers replay sends now besides its own."""
        if self.edited_headers is not None:
            return without_dlq_headers(self.edited_headers)
        return self.original_headers

    @property
    def is_edited(self) -> bool:
        return self.edited_raw is not None or self.edited_headers is not None

    def refuse_unless_pending(self, while_editing: bool = False) -> None:
        if self.status is not Status.PENDING:
            when = " while the editor was open" if while_editing else ""
            raise EditRefused(
                f"entry {self.dlq_id} is {self.status.value}{when}: only pending entries can"
                " be edited (what a replayed entry was sent as is kept; see dlqctl show)"
            )


@dataclass(frozen=True)
class EditChange:
    """The edit columns an edit leaves: None where replay sends the original."""

    edited_raw: bytes | None
    edited_headers: tuple[Header, ...] | None

    @property
    def is_edited(self) -> bool:
        return self.edited_raw is not None or self.edited_headers is not None


def plan_change(
    target: EditTarget,
    request: EditRequest,
    new_value: bytes | None,
) -> EditChange:
    """The edit columns after ``request`` (``new_value``: the value it gives, if any). A
    value or headers equal to the original are stored as "not edited" (NULL)."""
    if request.revert:
        return EditChange(None, None)
    raw = target.edited_raw
    if new_value is not None:
        raw = None if new_value == target.original_value else new_value
    headers = target.edited_headers
    if request.set_headers or request.unset_headers:
        edited = edit_headers(target.headers, request.set_headers, request.unset_headers)
        headers = None if edited == target.original_headers else edited
    elif headers is not None:
        headers = without_dlq_headers(headers)
    return EditChange(raw, headers)


@dataclass
class EditResult:
    """What an edit did: the sha256 of the value and headers replay sends, before and after
    (see docs/edit.md for the JSON object)."""

    dlq_id: UUID
    consumer: str
    changed: bool
    reverted: bool = False
    value_changed: bool = False
    headers_changed: bool = False
    value_sha256_before: str | None = None
    value_sha256_after: str | None = None
    headers_sha256_before: str | None = None
    headers_sha256_after: str | None = None
    edited_at: datetime | None = None
    edited_by: str | None = None
    # Why nothing changed (changed is False), for the operator.
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "edit",
            "dlq_id": str(self.dlq_id),
            "consumer": self.consumer,
            "changed": self.changed,
            **self._what_changed(),
            "edited_at": iso_utc(self.edited_at),
            "edited_by": self.edited_by,
            "note": self.note,
            **self.extra,
        }

    def audit_details(self, source: str) -> dict[str, Any]:
        """What the audit row records besides the id (``source``: editor, file, stdin, …)."""
        return {"source": source, **self._what_changed()}

    def _what_changed(self) -> dict[str, Any]:
        """The parts changed and the sha256 of what replay sends, before and after."""
        return {
            "reverted": self.reverted,
            "value_changed": self.value_changed,
            "headers_changed": self.headers_changed,
            "value_sha256_before": self.value_sha256_before,
            "value_sha256_after": self.value_sha256_after,
            "headers_sha256_before": self.headers_sha256_before,
            "headers_sha256_after": self.headers_sha256_after,
        }
