"""A partition revoked and assigned again while one of its events waits to be retried: the
work from before the revoke is dropped, and no commit passes a failed event not stored."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dlqctl.embedded.tansu import EmbeddedBroker
from dlqctl.kafka.consumer import PermanentError
from tests.consumer_helpers import (
    RunningConsumer,
    committed_offsets,
    encode,
    event,
    make_consumer,
)
from tests.factories import make_settings
from tests.fakes import Recorder
from tests.kafka_helpers import create_topic, produce, unique_name

# Long enough for a second member's join (about 4 s on tansu) to revoke and re-assign the
# partition while the consumer waits to retry.
RETRY_WAIT = 15.0


class _Handler:
    """Event 0 fails for good (its entry waits to be stored); event 1 fails, and its retry
    waits RETRY_WAIT. Once delivered again, event 0 blocks until the test lets it go."""

    def __init__(self, running: dict[str, Any]) -> None:
        self.calls: list[tuple[int, int]] = []  # (n, the consumer's assignments then)
        self.release = threading.Event()
        self.blocked = threading.Event()
        self._running = running

    def __call__(self, value: dict[str, Any]) -> None:
        n = value["n"]
        self.calls.append((n, self._running["consumer"].stats.assignments))
        seen = sum(1 for m, _ in self.calls if m == n)
        if n == 0:
            if seen > 1:
                self.blocked.set()
                assert self.release.wait(120), "the test never released event 0"
            raise PermanentError("event 0 cannot be projected")
        if n == 1:
            if seen <= 2:
                raise ValueError("event 1 failed")
            raise PermanentError("event 1 cannot be projected")

    def assignments_at(self, n: int, call: int) -> int:
        return [a for m, a in self.calls if m == n][call - 1]


@contextmanager
def _released(handler: _Handler) -> Iterator[None]:
    """Event 0 is let go however the block ends (a failed assert must not hang the stop)."""
    try:
        yield
    finally:
        handler.release.set()


def test_a_revoke_during_a_retry_wait_never_commits_past_an_unstored_failure(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic, other = create_topic(bootstrap), create_topic(bootstrap)
    group = unique_name("g")
    # Commit on every turn of the loop: a position that moves is committed at once.
    settings = make_settings(
        db_url, bootstrap, consumer_retry_backoff=(RETRY_WAIT,), consumer_commit_interval=0.001
    )
    shared: dict[str, Any] = {}
    handler = _Handler(shared)
    consumer = make_consumer(handler, settings, topic, group=group)
    shared["consumer"] = consumer
    with RunningConsumer(consumer) as running:
        running.wait_assigned()
        produce(bootstrap, topic, [(None, encode(event(n)), None) for n in range(2)])
        running.wait_for(lambda: [n for n, _ in handler.calls] == [0, 1], what="event 1's call")

        # A second member of the group (on another topic): an eager rebalance revokes the
        # partition and gives it back to the first member while event 1 waits to retry.
        second = make_consumer(Recorder(), settings, other, group=group, consumer="other")
        with RunningConsumer(second), _released(handler):
            running.wait_for(
                lambda: consumer.stats.assignments >= 2, what="the partition to come back"
            )
            running.wait_for(handler.blocked.is_set, what="event 0 delivered again")
            # The rebalance happened during event 1's retry wait (else this tests nothing).
            assert handler.assignments_at(1, 1) == 1
            assert handler.assignments_at(1, 2) >= 2

            # Event 0 is neither handled nor stored: no commit may pass it. (The commits
            # made before the handler blocked have had time to land.)
            stored = {r["source_offset"] for r in conn.execute("SELECT source_offset FROM dlq")}
            assert 0 not in stored
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                assert committed_offsets(bootstrap, group, topic, 1)[0] <= 0
                time.sleep(0.2)

            handler.release.set()
            running.wait_for(
                lambda: committed_offsets(bootstrap, group, topic, 1) == {0: 2},
                what="the commit past both events",
            )
    rows = conn.execute("SELECT source_offset, error_message FROM dlq ORDER BY 1").fetchall()
    assert [(r["source_offset"], r["error_message"]) for r in rows] == [
        (0, "PermanentError: event 0 cannot be projected"),
        (1, "PermanentError: event 1 cannot be projected"),
    ]
