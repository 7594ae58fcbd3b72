"""Retrying a failing handler and a failing DLQ write, with waits that the caller provides.

The waits are a callable, so the consumer can keep polling Kafka while it waits and the
tests can use a fake clock. A wait returns False when the consumer is asked to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

# Handler retries: at once, after 1 s, after 2 s (see docs/consumer.md, "Retries").
DEFAULT_HANDLER_BACKOFF: tuple[float, ...] = (0.0, 1.0, 2.0)
# DLQ writes while the database is down: 0.5 s, doubling, capped at 5 s (docs/consumer.md).
DB_BACKOFF_FIRST = 0.5
DB_BACKOFF_CAP = 5.0

T = TypeVar("T")
Wait = Callable[[float], bool]


class PermanentError(Exception):
    """Raised by a handler for an event that will never succeed: it goes to the DLQ at once."""


def handler_backoff(backoff: Sequence[float], retries: int | None = None) -> tuple[float, ...]:
    """The waits before each retry: ``backoff``, cut or extended (repeating its last wait)
    to ``retries`` entries when ``retries`` is given."""
    delays = tuple(float(d) for d in backoff)
    if retries is None:
        return delays
    if retries < 0:
        raise ValueError("retries must be 0 or more")
    if retries <= len(delays):
        return delays[:retries]
    last = delays[-1] if delays else 0.0
    return delays + (last,) * (retries - len(delays))


def db_backoff(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th failed write (1-based)."""
    return min(DB_BACKOFF_FIRST * 2.0 ** (attempt - 1), DB_BACKOFF_CAP)


@dataclass(frozen=True)
class HandlerOutcome:
    """How calling a handler ended: ``error`` is None when it succeeded."""

    error: Exception | None
    attempts: int
    interrupted: bool = False  # a stop came while waiting to retry; the event is not finished

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


def call_with_retries(
    handler: Callable[[Any], object], event: Any, delays: Sequence[float], wait: Wait
) -> HandlerOutcome:
    """Call ``handler(event)``; on an exception wait ``delays[i]`` and retry, one retry per
    delay. A PermanentError ends the retries at once."""
    try:
        handler(event)
    except Exception as exc:
        return retry_after_failure(handler, event, exc, delays, wait)
    return HandlerOutcome(None, 1)


def retry_after_failure(
    handler: Callable[[Any], object],
    event: Any,
    error: Exception,
    delays: Sequence[float],
    wait: Wait,
) -> HandlerOutcome:
    """The retries of :func:`call_with_retries` once the first call raised ``error``."""
    attempts = 1
    while not isinstance(error, PermanentError) and attempts <= len(delays):
        delay = delays[attempts - 1]
        if delay > 0 and not wait(delay):
            return HandlerOutcome(error, attempts, interrupted=True)
        attempts += 1
        try:
            handler(event)
        except Exception as exc:
            error = exc
        else:
            return HandlerOutcome(None, attempts)
    return HandlerOutcome(error, attempts)


def retry_until_done(
    action: Callable[[], T],
    wait: Wait,
    on_failure: Callable[[int, float, Exception], None],
    retry_on: tuple[type[Exception], ...],
) -> tuple[bool, T | None]:
    """Run ``action`` until it succeeds, waiting ``db_backoff(n)`` after the n-th failure
    (errors of ``retry_on`` only; ``on_failure`` hears of each). Returns (done, result);
    not done when a wait was interrupted."""
    attempt = 0
    while True:
        try:
            return True, action()
        except retry_on as exc:
            attempt += 1
            delay = db_backoff(attempt)
            on_failure(attempt, delay, exc)
            if not wait(delay):
                return False, None
