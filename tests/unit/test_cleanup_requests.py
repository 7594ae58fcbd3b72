"""Discard and purge requests: what they select, and the selections they refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dlqctl.core.cleanup import DiscardRequest, PurgeRequest
from dlqctl.core.errors import UsageError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import parse_id
from dlqctl.core.models import Status

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def purge_request(entry_filter: EntryFilter, **kwargs: object) -> PurgeRequest:
    kwargs.setdefault("as_of", NOW)
    return PurgeRequest(entry_filter, timedelta(days=30), "30d", **kwargs)  # type: ignore[arg-type]


def test_purge_defaults_to_replayed_and_discarded() -> None:
    request = purge_request(EntryFilter())
    assert request.statuses == (Status.REPLAYED, Status.DISCARDED)
    assert not request.deletes_pending
    selection = request.selection
    assert selection.statuses == (Status.REPLAYED, Status.DISCARDED)
    assert selection.until == NOW - timedelta(days=30)


def test_purge_deletes_pending_only_when_spelled_out() -> None:
    request = purge_request(EntryFilter(statuses=(Status.PENDING,)))
    assert request.statuses == (Status.PENDING,)
    assert request.deletes_pending


def test_purge_cutoff_and_until_take_the_earlier() -> None:
    earlier = NOW - timedelta(days=40)
    assert purge_request(EntryFilter(until=earlier)).selection.until == earlier
    later = NOW - timedelta(days=1)
    assert purge_request(EntryFilter(until=later)).selection.until == NOW - timedelta(days=30)


@pytest.mark.parametrize("size", [0, 100_001])
def test_purge_batch_size_bounds(size: int) -> None:
    with pytest.raises(UsageError, match="--batch-size"):
        purge_request(EntryFilter(), batch_size=size)


def test_purge_takes_no_ids() -> None:
    with pytest.raises(UsageError, match="no entry ids"):
        purge_request(EntryFilter(ids=(parse_id("0193a1b2c3d4"),)))


def test_discard_selects_pending_only() -> None:
    request = DiscardRequest(EntryFilter(consumers=("orders",)))
    assert request.selection.statuses == (Status.PENDING,)
    assert DiscardRequest(EntryFilter(statuses=(Status.PENDING,), error="x")).selection.error == "x"


@pytest.mark.parametrize(
    ("entry_filter", "message"),
    [
        (EntryFilter(), "at least one filter"),
        (EntryFilter(statuses=(Status.PENDING,)), "at least one filter besides --status"),
        (EntryFilter(statuses=(Status.REPLAYED,), consumers=("a",)), "only pending"),
        (EntryFilter(statuses=(Status.PENDING, Status.DISCARDED), error="x"), "discarded selects"),
    ],
)
def test_discard_refuses(entry_filter: EntryFilter, message: str) -> None:
    with pytest.raises(UsageError, match=message) as refused:
        DiscardRequest(entry_filter)
    assert refused.value.exit_code == 2


def test_discard_refuses_an_empty_reason() -> None:
    with pytest.raises(UsageError, match="--reason"):
        DiscardRequest(EntryFilter(consumers=("a",)), reason="  ")


def test_ids_alone_are_a_selection() -> None:
    request = DiscardRequest(EntryFilter(ids=(parse_id("0193a1b2c3d4"),)))
    assert request.selection.ids
