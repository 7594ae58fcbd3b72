from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlqctl.core.cursor import Position, decode_cursor, encode_cursor

AT = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
ID = uuid.UUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")


def test_round_trip_keeps_microseconds_and_id() -> None:
    text = encode_cursor(Position(AT, ID))
    assert decode_cursor(text) == Position(AT, ID)
    assert decode_cursor(f"  {text}\n") == Position(AT, ID)


def test_cursor_is_url_safe_and_opaque() -> None:
    text = encode_cursor(Position(AT, ID))
    assert text.replace("-", "").replace("_", "").isalnum()
    assert "=" not in text
    assert str(ID) not in text


def test_other_zones_are_the_same_instant() -> None:
    local = AT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert encode_cursor(Position(local, ID)) == encode_cursor(Position(AT, ID))


@given(
    at=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    dlq_id=st.uuids(),
)
def test_round_trip_any_position(at: datetime, dlq_id: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(Position(at, dlq_id))) == Position(at, dlq_id)


def _flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "not a cursor",
        "abc!def",
        "%%%%",
        "é" * 40,
        "AAAA",
        encode_cursor(Position(AT, ID))[:-2],
        encode_cursor(Position(AT, ID)) + "AA",
        _flip(encode_cursor(Position(AT, ID)), 5),
        _flip(encode_cursor(Position(AT, ID)), 20),
        str(ID),
    ],
)
def test_malformed_cursors_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a cursor printed by a previous `dlqctl list`"):
        decode_cursor(bad)


def test_a_cursor_of_another_version_says_so() -> None:
    import base64
    import struct
    import zlib

    body = struct.pack(">Bq16s", 9, 0, ID.bytes)
    text = base64.urlsafe_b64encode(body + struct.pack(">I", zlib.crc32(body))).decode()
    with pytest.raises(ValueError, match="another dlqctl version"):
        decode_cursor(text.rstrip("="))


def test_a_position_beyond_datetime_range_is_rejected() -> None:
    import base64
    import struct
    import zlib

    body = struct.pack(">Bq16s", 1, 2**62, ID.bytes)
    text = base64.urlsafe_b64encode(body + struct.pack(">I", zlib.crc32(body))).decode()
    with pytest.raises(ValueError, match="is not a cursor"):
        decode_cursor(text)
