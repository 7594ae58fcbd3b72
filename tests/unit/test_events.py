"""Turning a failed event into a DLQ entry: decoding, event ids, payloads, error text."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlqctl.core.events import (
    MAX_ERROR_BYTES,
    MISSING,
    UndecodableEvent,
    check_consumer_name,
    decode_event,
    derive_event_id,
    error_text,
    failed_event,
    payload_json,
)
from dlqctl.core.fingerprint import fingerprint
from dlqctl.core.text import one_line
from tests.fakes import NS, FakeMessage


def test_namespace_is_pinned() -> None:
    assert str(NS) == "947a8193-9848-5d61-ae1a-603907f49e97"
    assert derive_event_id({"event_id": "order-42"}, b"") == uuid.UUID(
        "ab599d5c-86e2-58cd-a656-58c2a7bbed80"
    )


@pytest.mark.parametrize(
    "text", ["3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10", "3F2C9A6E-1B7D-4C1E-9A57-0D2B8E6F4A10"]
)
def test_a_uuid_event_id_is_used_as_is(text: str) -> None:
    assert derive_event_id({"event_id": text, "id": "other"}, b"x") == uuid.UUID(text)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("order-42", "order-42"),
        (42, "42"),
        (1.5, "1.5"),
        (True, "True"),
        # Not the canonical 8-4-4-4-12 text: hashed, not parsed.
        ("3f2c9a6e1b7d4c1e9a570d2b8e6f4a10", "3f2c9a6e1b7d4c1e9a570d2b8e6f4a10"),
        ("{3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10}", "{3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10}"),
    ],
)
def test_other_event_ids_are_hashed_into_the_namespace(value: Any, name: str) -> None:
    assert derive_event_id({"event_id": value}, b"x") == uuid.uuid5(NS, name)


def test_id_field_is_the_fallback_and_null_counts_as_absent() -> None:
    assert derive_event_id({"id": 7}, b"x") == uuid.uuid5(NS, "7")
    assert derive_event_id({"event_id": None, "id": 7}, b"x") == uuid.uuid5(NS, "7")
    uid = "3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10"
    assert derive_event_id({"event_id": None, "id": uid}, b"x") == uuid.UUID(uid)


@pytest.mark.parametrize("event", [{"x": 1}, {"event_id": None}, [1, 2], "text", 5, MISSING])
def test_without_an_id_the_provenance_and_bytes_make_the_id(event: Any) -> None:
    raw = b'{"x":1}'
    expected = uuid.uuid5(NS, "orders/2/17/" + hashlib.sha256(raw).hexdigest())
    assert expected == uuid.UUID("ff8e3efd-eeb6-5de7-a4b0-464d567f8bd8")
    assert derive_event_id(event, raw, "orders", 2, 17) == expected


def test_without_provenance_the_unknown_parts_are_empty() -> None:
    raw = b"abc"
    assert derive_event_id(MISSING, raw) == uuid.uuid5(NS, "///" + hashlib.sha256(raw).hexdigest())


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"a": [1, 2.5, "x", null, true]}', {"a": [1, 2.5, "x", None, True]}),
        (b"  42 \n", 42),
        ('"caf\u00e9 \\ud83d\\ude00"'.encode(), "café 😀"),
        (b'"\\\\u0000"', "\\u0000"),  # an escaped backslash, not a NUL
    ],
)
def test_decode_accepts_json_that_jsonb_accepts(raw: bytes, value: Any) -> None:
    assert decode_event(raw) == value


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\xff\xfe{}", UnicodeDecodeError),
        (b"not json", json.JSONDecodeError),
        (b'{"a": 1} trailing', json.JSONDecodeError),
        (b"\xef\xbb\xbf{}", json.JSONDecodeError),  # a byte-order mark
        (b"", json.JSONDecodeError),
        (None, UndecodableEvent),
        (b'{"x": NaN}', UndecodableEvent),
        (b"[Infinity]", UndecodableEvent),
        (b"-Infinity", UndecodableEvent),
        (b'{"x": "a\\u0000b"}', UndecodableEvent),
        (b'{"a\\u0000": 1}', UndecodableEvent),
        (b'["\\ud800"]', UndecodableEvent),
        (b'["\\uDFFF x"]', UndecodableEvent),
    ],
)
def test_decode_rejects_what_jsonb_cannot_store(raw: bytes | None, error: type) -> None:
    with pytest.raises(error):
        decode_event(raw)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_decode_round_trips_or_refuses_exactly_nul_and_surrogates(value: Any) -> None:
    raw = json.dumps(value).encode("utf-8")  # ASCII: every non-ASCII char as an escape
    unstorable = "\x00" in raw.decode() or payload_json(value) is None
    if unstorable:
        with pytest.raises(UndecodableEvent):
            decode_event(raw)
    else:
        assert decode_event(raw) == value


@given(st.binary(max_size=64))
def test_decode_raises_only_value_errors_on_any_bytes(raw: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_event(raw)


def test_error_text_is_type_and_message() -> None:
    assert error_text(ValueError("bad order 7")) == "ValueError: bad order 7"
    assert error_text(KeyError("customer_id")) == "KeyError: 'customer_id'"
    assert error_text(RuntimeError()) == "RuntimeError"
    assert error_text("already formatted") == "already formatted"


def test_error_text_escapes_what_a_text_column_cannot_hold() -> None:
    assert error_text(ValueError("a\x00b")) == "ValueError: a\\x00b"
    assert error_text("x\ud800y") == "x\\ud800y"


def test_long_errors_are_cut_at_8_kb_with_a_marker() -> None:
    text = error_text(ValueError("é" * 10_000))
    encoded = text.encode("utf-8")
    assert len(encoded) <= MAX_ERROR_BYTES
    assert text.startswith("ValueError: éé")
    assert text.endswith(f" … [cut: {12 + 20_000} bytes in all]")
    assert error_text(ValueError("x" * 8000)) == "ValueError: " + "x" * 8000


def test_one_line_collapses_whitespace_and_shortens() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 600, limit=10) == "x" * 9 + "…"


@pytest.mark.parametrize("name", ["", "  ", "x" * 256, "a\x00b", "a\udcffb", "\ud800"])
def test_consumer_names_the_table_cannot_hold_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_consumer_name(name)


def test_failed_event_from_a_message_keeps_provenance_and_exact_bytes() -> None:
    event_id = "3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10"
    raw = json.dumps({"event_id": event_id, "amount": 1.10}).encode()
    message = FakeMessage(raw, headers_=[("trace", b"\x00\xff"), ("trace", None), ("e", b"")])
    entry = failed_event("orders-projector", json.loads(raw), ValueError("boom 12"), message)
    assert entry.consumer == "orders-projector"
    assert entry.event_id == uuid.UUID(event_id)
    assert json.loads(entry.payload) == {"event_id": event_id, "amount": 1.1}
    assert entry.error_message == "ValueError: boom 12"
    assert entry.error_fingerprint == fingerprint("ValueError: boom 12")
    assert (entry.source_topic, entry.source_partition, entry.source_offset) == ("orders", 2, 17)
    assert entry.event_key == b"order-1"
    assert entry.event_raw == raw
    assert entry.event_headers is not None
    assert json.loads(entry.event_headers) == [
        ["trace", base64.b64encode(b"\x00\xff").decode()],
        ["trace", None],
        ["e", ""],
    ]


def test_a_message_without_headers_records_an_empty_list() -> None:
    entry = failed_event("c", MISSING, ValueError("x"), FakeMessage(b"\xff", headers_=None))
    assert entry.event_headers == "[]"


def test_undecodable_bytes_get_the_base64_stand_in() -> None:
    raw = b"\xff\x00 not json"
    entry = failed_event("c", MISSING, ValueError("x"), FakeMessage(raw))
    assert json.loads(entry.payload) == {"_dlqctl_raw_base64": base64.b64encode(raw).decode()}
    assert entry.event_raw == raw
    assert entry.event_id == uuid.uuid5(NS, "orders/2/17/" + hashlib.sha256(raw).hexdigest())


def test_a_tombstone_is_stored_as_one_without_bytes() -> None:
    for event in (MISSING, None):
        entry = failed_event("c", event, UndecodableEvent("no value"), FakeMessage(None))
        assert entry.event_raw is None
        assert json.loads(entry.payload) == {"_dlqctl_tombstone": True}
        assert entry.event_id == uuid.uuid5(NS, "orders/2/17/" + hashlib.sha256(b"").hexdigest())
        assert entry.event_key == b"order-1"


def test_the_consumer_passes_the_bytes_as_payload_to_keep_numbers_exact() -> None:
    raw = b'{"amount": 0.10000000000000000555}'
    entry = failed_event(
        "c", json.loads(raw), ValueError("x"), FakeMessage(raw), payload=raw.decode()
    )
    assert entry.payload == raw.decode()


def test_writer_input_as_bytes_is_decoded_like_a_message() -> None:
    entry = failed_event("c", b'{"id": "a-1"}', "Boom: failed")
    assert entry.event_id == uuid.uuid5(NS, "a-1")
    assert entry.payload == '{"id": "a-1"}'
    assert entry.event_raw == b'{"id": "a-1"}'
    assert entry.source_topic is None and entry.event_headers is None


def test_writer_input_as_a_value_without_a_message() -> None:
    entry = failed_event("c", {"b": 1, "a": "é"}, ValueError("x"))
    assert entry.payload == '{"b":1,"a":"é"}'
    assert entry.event_raw is None
    digest = hashlib.sha256(entry.payload.encode()).hexdigest()
    assert entry.event_id == uuid.uuid5(NS, "///" + digest)


def test_writer_input_jsonb_cannot_hold_is_kept_as_text_bytes() -> None:
    entry = failed_event("c", {"x": float("nan"), "when": object}, ValueError("x"))
    assert entry.event_raw is not None
    assert b"NaN" in entry.event_raw
    stand_in = json.loads(entry.payload)
    assert base64.b64decode(stand_in["_dlqctl_raw_base64"]) == entry.event_raw
