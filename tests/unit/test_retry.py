"""Retry and backoff timing of the embedded consumer, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from dlqctl.core.errors import DatabaseUnavailable
from dlqctl.core.retry import (
    PermanentError,
    call_with_retries,
    db_backoff,
    handler_backoff,
    retry_until_done,
)
from tests.fakes import FakeClock, FlakyHandler


def test_default_backoff_retries_at_once_then_after_1_and_2_seconds() -> None:
    clock = FakeClock()
    handler = FlakyHandler(clock, failures=10)
    outcome = call_with_retries(handler, {"n": 1}, handler_backoff((0, 1, 2)), clock.wait)
    assert handler.calls == [0.0, 0.0, 1.0, 3.0]
    assert outcome.attempts == 4
    assert isinstance(outcome.error, ValueError)
    assert not outcome.ok and not outcome.interrupted


def test_success_on_a_retry_ends_the_retries() -> None:
    clock = FakeClock()
    handler = FlakyHandler(clock, failures=2)
    outcome = call_with_retries(handler, {}, (0.0, 1.0, 2.0), clock.wait)
    assert outcome.ok and outcome.error is None
    assert handler.calls == [0.0, 0.0, 1.0]
    assert outcome.attempts == 3


def test_first_call_success_waits_for_nothing() -> None:
    clock = FakeClock()
    outcome = call_with_retries(FlakyHandler(clock, failures=0), {}, (0.0, 1.0), clock.wait)
    assert outcome.ok and outcome.attempts == 1 and clock.waits == []


def test_a_permanent_error_skips_the_retries() -> None:
    clock = FakeClock()
    handler = FlakyHandler(clock, failures=10, error=PermanentError("unknown currency 'XXX'"))
    outcome = call_with_retries(handler, {}, (0.0, 1.0, 2.0), clock.wait)
    assert handler.calls == [0.0]
    assert isinstance(outcome.error, PermanentError) and outcome.attempts == 1


def test_a_permanent_error_on_a_retry_ends_them_too() -> None:
    clock = FakeClock()
    errors = iter([ValueError("transient"), PermanentError("now it is clear")])

    def handler(_event: Any) -> None:
        raise next(errors)

    outcome = call_with_retries(handler, {}, (0.0, 1.0, 2.0), clock.wait)
    assert isinstance(outcome.error, PermanentError) and outcome.attempts == 2


def test_zero_retries_fail_at_once() -> None:
    clock = FakeClock()
    handler = FlakyHandler(clock, failures=10)
    outcome = call_with_retries(handler, {}, handler_backoff((0, 1, 2), retries=0), clock.wait)
    assert handler.calls == [0.0] and outcome.attempts == 1 and clock.waits == []


def test_a_stop_while_waiting_leaves_the_event_unfinished() -> None:
    clock = FakeClock(stop_at=0.5)
    handler = FlakyHandler(clock, failures=10)
    outcome = call_with_retries(handler, {}, (0.0, 1.0, 2.0), clock.wait)
    assert outcome.interrupted and not outcome.ok
    assert handler.calls == [0.0, 0.0]


@pytest.mark.parametrize(
    ("backoff", "retries", "expected"),
    [
        ((0, 1, 2), None, (0.0, 1.0, 2.0)),
        ((0, 1, 2), 0, ()),
        ((0, 1, 2), 2, (0.0, 1.0)),
        ((0, 1, 2), 5, (0.0, 1.0, 2.0, 2.0, 2.0)),
        ((), 2, (0.0, 0.0)),
    ],
)
def test_handler_backoff_fits_the_number_of_retries(
    backoff: tuple[float, ...], retries: int | None, expected: tuple[float, ...]
) -> None:
    assert handler_backoff(backoff, retries) == expected


def test_negative_retries_are_refused() -> None:
    with pytest.raises(ValueError):
        handler_backoff((0,), -1)


def test_database_backoff_doubles_up_to_5_seconds() -> None:
    assert [db_backoff(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_writes_are_retried_with_the_capped_backoff_until_the_database_is_back() -> None:
    clock = FakeClock()
    attempts: list[float] = []
    reported: list[tuple[int, float]] = []

    def write() -> str:
        attempts.append(clock.now)
        if clock.now < 20:
            raise DatabaseUnavailable("cannot connect")
        return "stored"

    done, result = retry_until_done(
        write,
        clock.wait,
        lambda n, delay, _exc: reported.append((n, delay)),
        (DatabaseUnavailable,),
    )
    assert (done, result) == (True, "stored")
    assert attempts == [0.0, 0.5, 1.5, 3.5, 7.5, 12.5, 17.5, 22.5]
    assert reported == [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (6, 5.0), (7, 5.0)]


def test_a_stop_during_an_outage_gives_up_without_a_result() -> None:
    clock = FakeClock(stop_at=3)

    def write() -> None:
        raise DatabaseUnavailable("down")

    done, result = retry_until_done(write, clock.wait, lambda *_: None, (DatabaseUnavailable,))
    assert (done, result) == (False, None)
    assert clock.waits == [0.5, 1.0, 2.0]


def test_other_errors_are_not_retried() -> None:
    clock = FakeClock()

    def write() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        retry_until_done(write, clock.wait, lambda *_: None, (DatabaseUnavailable,))
    assert clock.waits == []
