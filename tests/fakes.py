"""Every fake of the suite: stand-ins for what dlqctl reads or calls back (a Kafka message, a
clock, event handlers, the listeners of batch runs). Real servers are in conftest.py."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from dlqctl.core.replay import ReplayPlan
from dlqctl.core.runs import SilentListener
from tests.factories import entry, insert_entries

# Spelled out here rather than imported, so a change of the namespace fails the tests.
NS = uuid.uuid5(uuid.NAMESPACE_URL, "dlqctl:event-id")


# --- a Kafka message ---------------------------------------------------------------------


@dataclass
class FakeMessage:
    """The parts of confluent_kafka.Message the writer reads."""

    raw: bytes | None
    topic_: str = "orders"
    partition_: int = 2
    offset_: int = 17
    key_: bytes | None = b"order-1"
    headers_: list[tuple[str, bytes | None]] | None = field(default_factory=list)

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.raw

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self.headers_


# --- time --------------------------------------------------------------------------------


class FakeClock:
    """Time that moves only when the code under test waits: call it for the time, hand over
    ``wait`` (returns False once ``stop_at`` is reached, like ``Event.wait`` after a stop) or
    ``sleep``."""

    def __init__(self, start: float = 0.0, stop_at: float | None = None) -> None:
        self.now = start
        self.waits: list[float] = []
        self.stop_at = stop_at

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return self.stop_at is None or self.now < self.stop_at

    def sleep(self, seconds: float) -> None:
        self.wait(seconds)


# --- event handlers (the embedded consumer's callback) ----------------------------------


class FlakyHandler:
    """A handler that fails its first ``failures`` calls, noting the fake time of each."""

    def __init__(self, clock: FakeClock, failures: int, error: Exception | None = None) -> None:
        self.clock = clock
        self.failures = failures
        self.error = error or ValueError("downstream timed out")
        self.calls: list[float] = []

    def __call__(self, event: Any) -> None:
        self.calls.append(self.clock.now)
        if len(self.calls) <= self.failures:
            raise self.error


class Recorder:
    """A handler that records the events it saw and fails the ones marked poison."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.calls: list[Any] = []
        self.sleep = sleep
        self._lock = threading.Lock()

    def __call__(self, value: Any) -> None:
        with self._lock:
            self.calls.append(value)
        if self.sleep:
            time.sleep(self.sleep)
        if isinstance(value, dict) and value.get("poison"):
            raise ValueError(f"cannot project event {value.get('n')}")

    def handled(self) -> list[int]:
        """The ``n`` of events handled successfully (in order, repeats kept)."""
        with self._lock:
            return [c["n"] for c in self.calls if isinstance(c, dict) and not c.get("poison")]

    def count(self, n: int) -> int:
        with self._lock:
            return sum(1 for c in self.calls if isinstance(c, dict) and c.get("n") == n)


# --- listeners of batch runs (replay, discard, purge) -----------------------------------


class BarrierListener(SilentListener):
    """Holds each run after planning, and again after its first batch, until every run got
    there: they claim together and each has published a batch before any goes on."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier
        self.batches = 0

    def confirm(self, plan: ReplayPlan) -> None:
        self.barrier.wait(timeout=60)

    def advanced(self, attempted: int) -> None:
        self.batches += 1
        if self.batches == 1:
            self.barrier.wait(timeout=60)


class AfterFirstBatch(SilentListener):
    """Runs ``fault`` once, right after the run's first batch was published."""

    def __init__(self, fault: Callable[[], None]) -> None:
        self.fault = fault
        self.done = False

    def advanced(self, attempted: int) -> None:
        if not self.done:
            self.done = True
            self.fault()


class AtConfirm(SilentListener):
    """Runs ``action`` when the run asks for confirmation (after the preflight)."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action

    def confirm(self, plan: ReplayPlan) -> None:
        self.action()


class StopAfter(SilentListener):
    """A listener that sets the run's stop event after its ``batches``-th batch."""

    def __init__(self, batches: int, stop: threading.Event) -> None:
        self.left = batches
        self.stop = stop

    def advanced(self, done: int) -> None:
        self.left -= 1
        if self.left == 0:
            self.stop.set()


# --- listeners that act on the database during a purge ---------------------------------


class InsertOnEachBatch(SilentListener):
    """A listener that makes another connection insert rows between the purge's batches."""

    def __init__(self, db_url: str) -> None:
        self.writer = psycopg.connect(db_url, autocommit=True)
        self.inserted: list[uuid.UUID] = []

    def started(self, total: int) -> None:
        self.total = total

    def advanced(self, done: int) -> None:
        rows = [entry(status="replayed", failed_at=datetime.now(UTC)) for _ in range(3)]
        self.inserted += insert_entries(self.writer, rows)


class TerminateAfterFirstBatch(SilentListener):
    """A listener that kills the purge's own server connection after its first batch."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def advanced(self, done: int) -> None:
        self.conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'dlqctl purge'"
        )
