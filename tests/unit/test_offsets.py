"""Commit positions: never past an event that is neither handled nor stored."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dlqctl.kafka.offsets import OffsetTracker

P0 = ("orders", 0)
P1 = ("orders", 1)


def test_nothing_seen_nothing_to_commit() -> None:
    tracker = OffsetTracker()
    assert tracker.position(P0) is None
    assert tracker.committable() == {}


def test_handled_events_move_the_position_past_them() -> None:
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.finished(P0, offset)
    assert tracker.position(P0) == 8
    assert tracker.committable() == {P0: 8}


def test_an_open_failure_holds_the_position_until_it_is_stored() -> None:
    tracker = OffsetTracker()
    tracker.finished(P0, 0)
    tracker.opened(P0, 1)
    tracker.finished(P0, 2)
    tracker.opened(P0, 3)
    tracker.finished(P0, 4)
    assert tracker.position(P0) == 1
    tracker.close(P0, 3)
    assert tracker.position(P0) == 1
    tracker.close(P0, 1)
    assert tracker.position(P0) == 5


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.opened(P0, 10)
    tracker.finished(P1, 3)
    assert tracker.committable() == {P0: 10, P1: 4}
    assert tracker.committable([P1]) == {P1: 4}


def test_gaps_in_offsets_are_fine() -> None:
    tracker = OffsetTracker()
    tracker.finished(P0, 10)
    tracker.finished(P0, 15)  # 11-14 compacted away or transaction markers
    assert tracker.position(P0) == 16


def test_committable_reports_only_positions_that_moved() -> None:
    tracker = OffsetTracker()
    tracker.finished(P0, 0)
    tracker.finished(P1, 0)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.finished(P1, 1)
    assert tracker.committable() == {P1: 2}


def test_forgotten_partitions_start_over() -> None:
    tracker = OffsetTracker()
    tracker.opened(P0, 4)
    tracker.forget([P0])
    assert tracker.position(P0) is None
    assert tracker.open_count() == 0
    tracker.finished(P0, 2)  # re-assigned: read again from the committed offset
    assert tracker.position(P0) == 3


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40))
def test_the_position_never_passes_an_unfinished_event(steps: list[tuple[bool, bool]]) -> None:
    """Each offset in turn fails or not; a failure's entry is stored later or never."""
    tracker = OffsetTracker()
    unfinished: set[int] = set()
    for offset, (fails, stored_later) in enumerate(steps):
        if fails:
            tracker.opened(P0, offset)
            unfinished.add(offset)
        else:
            tracker.finished(P0, offset)
        position = tracker.position(P0)
        assert position is not None
        assert all(position <= o for o in unfinished)
        if stored_later and unfinished:
            done = min(unfinished) if offset % 2 else max(unfinished)
            tracker.close(P0, done)
            unfinished.discard(done)
    if steps:
        expected = min(unfinished) if unfinished else len(steps)
        assert tracker.position(P0) == expected
