"""Opaque keyset cursors for `dlqctl list`: the position of the last entry of a page.

A cursor is base64url (no padding) of: a version byte, failed_at as microseconds since
the Unix epoch, the dlq_id's 16 bytes, and a CRC-32 of those, so that a mistyped or
truncated cursor is rejected instead of silently starting somewhere else.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

CURSOR_VERSION = 1
_BODY = struct.Struct(">Bq16s")
_CHECK = struct.Struct(">I")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_ALPHABET = re.compile(r"^[A-Za-z0-9_-]+$")

CURSOR_HELP = "a cursor printed by a previous `dlqctl list` (its footer or next_cursor)"


@dataclass(frozen=True, order=True)
class Position:
    """A place in the newest-first order: entries after it have a smaller (failed_at, dlq_id)."""

    failed_at: datetime
    dlq_id: UUID


def encode_cursor(position: Position) -> str:
    """The opaque text of ``position``."""
    micros = (position.failed_at - _EPOCH) // _MICROSECOND
    body = _BODY.pack(CURSOR_VERSION, micros, position.dlq_id.bytes)
    raw = body + _CHECK.pack(zlib.crc32(body))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> Position:
    """The position a cursor names; ValueError when it is not one dlqctl printed."""
    stripped = text.strip()
    invalid = ValueError(f"{text!r} is not {CURSOR_HELP}")
    if not _ALPHABET.match(stripped):
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(raw) != _BODY.size + _CHECK.size:
        raise invalid
    body, (check,) = raw[: _BODY.size], _CHECK.unpack(raw[_BODY.size :])
    if zlib.crc32(body) != check:
        raise invalid
    version, micros, id_bytes = _BODY.unpack(body)
    if version != CURSOR_VERSION:
        raise ValueError(f"{text!r} is a cursor of another dlqctl version; start from page one")
    try:
        failed_at = _EPOCH + micros * _MICROSECOND
    except OverflowError:
        raise invalid from None
    return Position(failed_at=failed_at, dlq_id=UUID(bytes=id_bytes))
