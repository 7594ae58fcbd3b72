from __future__ import annotations

from uuid import UUID

import pytest

from dlqctl.core.ids import parse_id, parse_uuid


def test_full_id_is_exact() -> None:
    selector = parse_id("0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B")
    assert selector.is_exact
    assert selector.low == UUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")


def test_prefix_is_a_range_hyphens_optional() -> None:
    selector = parse_id("0193a1b2-c3")
    assert selector.low == UUID("0193a1b2-c300-0000-0000-000000000000")
    assert selector.high == UUID("0193a1b2-c3ff-ffff-ffff-ffffffffffff")
    assert parse_id("0193a1b2c3") == parse_id("0193a1b2-c3").__class__(
        text="0193a1b2c3", low=selector.low, high=selector.high
    )


@pytest.mark.parametrize(
    "text", ["", "0193a1b", "xyz12345", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b0", "%%%%%%%%"]
)
def test_bad_ids(text: str) -> None:
    with pytest.raises(ValueError, match="id|short|longer"):
        parse_id(text)


def test_parse_uuid() -> None:
    assert parse_uuid(" 0193a1b2c3d47e5f8a9b0c1d2e3f4a5b ") == UUID(
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    )
    with pytest.raises(ValueError, match="not a UUID"):
        parse_uuid("nope")


def test_entry_filter_keeps_each_consumer_and_status_once() -> None:
    from dlqctl.core.filters import EntryFilter
    from dlqctl.core.models import Status

    entry_filter = EntryFilter(
        consumers=("b", "a", "b"), statuses=(Status.PENDING, Status.REPLAYED, Status.PENDING)
    )
    assert entry_filter.consumers == ("b", "a")
    assert entry_filter.statuses == (Status.PENDING, Status.REPLAYED)
    assert entry_filter.with_statuses((Status.DISCARDED,) * 2).statuses == (Status.DISCARDED,)
