"""Which failures link back to an entry: the dlq-id and dlq-consumer headers replay adds."""

from __future__ import annotations

import uuid

from dlqctl.core.events import failed_event, replayed_from
from dlqctl.core.replay import HEADER_CONSUMER, HEADER_ID, message_headers
from tests.fakes import FakeMessage

ENTRY = uuid.UUID("01a22c30-7552-7a7d-9c4c-f2a91ef196ca")


def test_the_headers_replay_sends_name_the_entry_for_the_same_consumer() -> None:
    headers = message_headers([["trace", "dDE="]], str(ENTRY), "orders", 1)
    encoded = [(k, v.encode() if isinstance(v, str) else v) for k, v in headers]
    assert (HEADER_ID, HEADER_CONSUMER) == ("dlq-id", "dlq-consumer")
    assert replayed_from("orders", encoded) == ENTRY
    assert replayed_from("billing", encoded) is None


def test_anything_else_links_nothing() -> None:
    good_id = str(ENTRY).encode()
    assert replayed_from("orders", []) is None
    assert replayed_from("orders", [("dlq-id", good_id)]) is None  # no consumer named
    assert replayed_from("orders", [("dlq-consumer", b"orders")]) is None
    for bad in (b"old-entry", b"\xff", str(ENTRY.hex).encode(), None, b" " + good_id):
        assert replayed_from("orders", [("dlq-id", bad), ("dlq-consumer", b"orders")]) is None
    assert replayed_from("orders", [("dlq-id", good_id), ("dlq-consumer", None)]) is None
    # The last of each header counts; byte keys are read as text.
    headers = [
        ("dlq-id", b"nope"),
        (b"dlq-id", str(ENTRY).upper().encode()),
        ("dlq-consumer", b"orders"),
    ]
    assert replayed_from("orders", headers) == ENTRY  # type: ignore[arg-type]


def test_the_entry_carries_it() -> None:
    message = FakeMessage(
        b'{"id": 1}', headers_=[("dlq-id", str(ENTRY).encode()), ("dlq-consumer", b"c")]
    )
    assert failed_event("c", {"id": 1}, "E: x", message).replayed_from == ENTRY
    assert failed_event("d", {"id": 1}, "E: x", message).replayed_from is None
    assert failed_event("c", {"id": 1}, "E: x").replayed_from is None
