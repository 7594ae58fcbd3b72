"""Canary replays, the pure part: where the group must get to, and what counts as failing again."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from dlqctl.core.canary import (
    Canary,
    CanaryMessage,
    behind,
    describe_positions,
    refailed_ids,
    targets,
)
from dlqctl.core.errors import UsageError

A, B, C, OTHER = (uuid.UUID(int=n) for n in range(1, 5))
EA, EB, EC = (uuid.UUID(int=n) for n in range(11, 14))


def _message(dlq_id: uuid.UUID, event_id: uuid.UUID, partition: int, offset: int) -> CanaryMessage:
    return CanaryMessage(dlq_id, "orders", event_id, 2, "t", partition, offset)


MESSAGES = [_message(A, EA, 0, 7), _message(B, EB, 1, 3), _message(C, EC, 0, 9)]


def test_the_group_must_commit_past_the_last_canary_message_of_each_partition() -> None:
    wanted = targets(MESSAGES)
    assert wanted == {("t", 0): 10, ("t", 1): 4}
    assert behind(wanted, {("t", 0): 10, ("t", 1): 4}) == {}
    assert behind(wanted, {("t", 0): 9, ("t", 1): 5}) == {("t", 0): (9, 10)}
    lagging = behind(wanted, {})
    assert lagging == {("t", 0): (-1, 10), ("t", 1): (-1, 4)}
    assert describe_positions(lagging) == (
        "t[0] nothing committed, needs 10; t[1] nothing committed, needs 4"
    )


def test_a_linked_attempt_counts_by_its_number_not_its_time() -> None:
    # B's attempt 1 is from an earlier replay; this replay's attempt is 2.
    attempts = [(B, 1), (C, 2), (OTHER, 5)]
    assert refailed_ids(MESSAGES, attempts, [], []) == [C]


def test_a_new_entry_of_the_same_consumer_and_event_counts() -> None:
    new, older, foreign = (uuid.uuid4() for _ in range(3))
    same_events = [
        (A, "orders", EA),  # the canary entry itself
        (new, "orders", EB),  # stored after the canary was sent
        (older, "orders", EC),  # there before: known
        (foreign, "billing", EA),  # another consumer's
    ]
    assert refailed_ids(MESSAGES, [], same_events, [older]) == [B]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "at least 1"),
        ({"size": 1, "group": " "}, "must not be empty"),
        ({"size": 1, "wait": timedelta(0)}, "longer than zero"),
    ],
)
def test_canary_settings_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Canary(**kwargs)  # type: ignore[arg-type]


def test_the_wait_is_shown_as_written_or_in_its_largest_unit() -> None:
    assert Canary(1, wait=timedelta(seconds=90)).to_json() == {
        "size": 1,
        "group": None,
        "wait": "90s",
    }
    assert Canary(1).wait_label == "2m"
    assert Canary(1, wait=timedelta(hours=2)).wait_label == "2h"
    assert Canary(1, wait=timedelta(seconds=120), wait_text="120s").wait_label == "120s"
