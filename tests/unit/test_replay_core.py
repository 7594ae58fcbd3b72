"""Replay's pure parts: compact JSON, headers, keys, sizes, topic resolution, options."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlqctl.core.errors import UsageError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status
from dlqctl.core.replay import (
    RECORD_OVERHEAD,
    RateLimiter,
    ReplayRequest,
    compact_jsonb_text,
    list_ids,
    message_headers,
    message_key,
    message_value,
    missing_topic_error,
    resolve_topic,
    validate_topic_name,
    wire_size,
)
from tests.fakes import FakeClock


def jsonb_style(value: Any) -> str:
    """How jsonb prints a value: ", " and ": " separators, non-ASCII as is."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "b": [1, 2.50, {"c": null}]}', '{"a":1,"b":[1,2.50,{"c":null}]}'),
        ('{"s": "x, y: z"}', '{"s":"x, y: z"}'),
        ('{"q": "say \\"hi\\", ok: "}', '{"q":"say \\"hi\\", ok: "}'),
        ('{"b": "back\\\\", "c": "d, e"}', '{"b":"back\\\\","c":"d, e"}'),
        ('"top level, string"', '"top level, string"'),
        ("[1, 2, 3]", "[1,2,3]"),
        ("12.500", "12.500"),
        ('{"é": "ü, ß"}', '{"é":"ü, ß"}'),
        ('{"ctl": "\\u0001\\n"}', '{"ctl":"\\u0001\\n"}'),
    ],
)
def test_compact_jsonb_text_examples(text: str, expected: str) -> None:
    assert compact_jsonb_text(text) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_compact_jsonb_text_equals_compact_json(value: Any) -> None:
    assert compact_jsonb_text(jsonb_style(value)) == compact(value)


def test_headers_keep_order_and_duplicates_and_replace_dlq_headers() -> None:
    stored = [
        ["trace", base64.b64encode(b"t1").decode()],
        ["dlq-id", base64.b64encode(b"old-id").decode()],
        ["bin", base64.b64encode(b"\xff\x00").decode()],
        ["trace", base64.b64encode(b"t2").decode()],
        ["empty", None],
        ["dlq-retry-count", base64.b64encode(b"7").decode()],
    ]
    assert message_headers(stored, "0193-id", "orders", 3) == [
        ("trace", b"t1"),
        ("bin", b"\xff\x00"),
        ("trace", b"t2"),
        ("empty", None),
        ("dlq-id", "0193-id"),
        ("dlq-consumer", "orders"),
        ("dlq-retry-count", "3"),
    ]
    assert message_headers(None, "i", "c", 1) == [
        ("dlq-id", "i"),
        ("dlq-consumer", "c"),
        ("dlq-retry-count", "1"),
    ]


def test_key_and_value_prefer_the_recorded_originals() -> None:
    assert message_key(b"k", "e") == b"k"
    assert message_key(b"", "e") == b""
    assert message_key(None, "e") == "e"
    assert message_value(b"\xffraw", '{"a": 1}') == b"\xffraw"
    assert message_value(None, '{"a": 1}') == '{"a":1}'
    with pytest.raises(ValueError):
        message_value(None, None)


def test_an_edit_replaces_the_value_and_the_headers_and_only_those() -> None:
    assert message_value(b"orig", None, b"edited") == b"edited"
    assert message_value(None, '{"a": 1}', b"") == b""
    assert message_value(None, '{"_dlqctl_tombstone": true}', b"{}") == b"{}"
    assert message_value(b"orig", None, None) == b"orig"
    stored = [["trace", base64.b64encode(b"t1").decode()]]
    edited = [["dlq-id", base64.b64encode(b"x").decode()], ["fixed", None]]
    assert message_headers(stored, "i", "c", 2, edited) == [
        ("fixed", None),
        ("dlq-id", "i"),
        ("dlq-consumer", "c"),
        ("dlq-retry-count", "2"),
    ]
    # An edit that removed every header: only ours.
    assert message_headers(stored, "i", "c", 2, []) == [
        ("dlq-id", "i"),
        ("dlq-consumer", "c"),
        ("dlq-retry-count", "2"),
    ]


def test_a_stored_tombstone_replays_as_a_null_value() -> None:
    assert message_value(None, '{"_dlqctl_tombstone": true}') is None
    # Recorded bytes that happen to look like the marker are an ordinary value.
    assert message_value(b'{"_dlqctl_tombstone": true}', None) == b'{"_dlqctl_tombstone": true}'
    assert message_value(None, '{"_dlqctl_tombstone": false}') == '{"_dlqctl_tombstone":false}'


def test_wire_size_counts_utf8_bytes_and_header_overhead() -> None:
    assert wire_size("k", "é", []) == RECORD_OVERHEAD + 1 + 2
    assert (
        wire_size(b"k", b"v", [("h", None), ("h2", "x")]) == RECORD_OVERHEAD + 2 + 10 + 1 + 10 + 3
    )


def test_topic_precedence() -> None:
    topic_map = {"orders": "orders.retry"}
    assert resolve_topic("forced", "orders.v1", "orders", topic_map) == "forced"
    assert resolve_topic(None, "orders.v1", "orders", topic_map) == "orders.v1"
    assert resolve_topic(None, None, "orders", topic_map) == "orders.retry"
    assert resolve_topic(None, None, "payments", topic_map) is None
    error = missing_topic_error(["payments", "audit", "payments"])
    assert error.exit_code == 2
    assert "audit, payments" in error.message and "--topic" in error.message


def test_topic_names_are_validated() -> None:
    assert validate_topic_name("orders.v1_x-2", "--topic") == "orders.v1_x-2"
    for bad in ("", "with space", "x" * 250, "..", "ü"):
        with pytest.raises(UsageError, match="not a valid Kafka topic name"):
            validate_topic_name(bad, "--topic")


def test_rate_bounds_the_batch_to_about_one_second() -> None:
    def request(**kwargs: Any) -> ReplayRequest:
        return ReplayRequest(EntryFilter(), **kwargs)

    assert request(batch_size=500).effective_batch_size() == 500
    assert request(batch_size=500, rate=20).effective_batch_size() == 20
    assert request(batch_size=500, rate=0.5).effective_batch_size() == 1
    assert request(batch_size=10, rate=1000).effective_batch_size() == 10


def test_replay_selects_pending_entries_unless_statuses_are_given() -> None:
    by_default = ReplayRequest(EntryFilter(consumers=("orders",)))
    assert by_default.statuses == (Status.PENDING,)
    assert by_default.selection == EntryFilter(consumers=("orders",), statuses=(Status.PENDING,))
    chosen = ReplayRequest(EntryFilter(statuses=(Status.REPLAYED, Status.DISCARDED)))
    assert chosen.selection.statuses == (Status.REPLAYED, Status.DISCARDED)


def test_replay_request_refuses_an_invalid_topic() -> None:
    with pytest.raises(UsageError, match="--topic: 'a b' is not a valid Kafka topic name"):
        ReplayRequest(EntryFilter(), topic="a b")


def test_list_ids_shortens_long_lists() -> None:
    assert list_ids(["a", "b"]) == "a, b"
    assert list_ids([str(i) for i in range(25)], limit=3) == "0, 1, 2 and 22 more"


def test_rate_limiter_spaces_messages() -> None:
    clock = FakeClock(start=100.0)
    limiter = RateLimiter(4, wait=clock.sleep, clock=clock)
    sent_at = []
    for _ in range(9):
        limiter.pace()
        sent_at.append(clock.now)
    assert sent_at == [100.0 + i * 0.25 for i in range(9)]  # 4 per second, no burst
    clock.now += 10  # idle (a slow claim): at most one extra message right away
    limiter.pace()
    limiter.pace()
    limiter.pace()
    assert clock.now == pytest.approx(112.25)
