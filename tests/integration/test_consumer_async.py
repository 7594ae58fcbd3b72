"""Async handlers on the real broker and database: awaited, on one event loop of the
consumer's; one that always fails stores every event, and no commit passes an event that
is neither handled nor stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dlqctl.embedded.tansu import EmbeddedBroker
from tests.consumer_helpers import (
    RunningConsumer,
    committed_offsets,
    encode,
    event,
    make_consumer,
)
from tests.factories import make_settings
from tests.kafka_helpers import create_topic, produce, unique_name

EVENTS = 6


async def _always_fails(value: dict[str, Any]) -> None:
    await asyncio.sleep(0)
    raise ValueError(f"async handler cannot project event {value['n']}")


class _AsyncCallable:
    async def __call__(self, value: dict[str, Any]) -> None:
        await _always_fails(value)


def _returns_an_awaitable(value: dict[str, Any]) -> Awaitable[None]:
    return _always_fails(value)


@pytest.mark.parametrize(
    "handler",
    [_always_fails, _AsyncCallable(), _returns_an_awaitable],
    ids=["async-def", "async-call", "returns-awaitable"],
)
def test_an_always_failing_async_handler_stores_every_event(
    broker: EmbeddedBroker, conn: Any, db_url: str, handler: Callable[[Any], object]
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    group = unique_name("g")
    produce(bootstrap, topic, [(None, encode(event(n)), None) for n in range(EVENTS)])
    settings = make_settings(db_url, bootstrap, consumer_retry_backoff=(0.0,))

    def stored() -> int:
        return int(conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"])

    with RunningConsumer(make_consumer(handler, settings, topic, group=group)) as running:
        # Whatever has been committed so far covers only stored events.
        def committed_covers_only_stored() -> bool:
            committed = committed_offsets(bootstrap, group, topic, 1)[0]
            assert committed <= stored()
            return committed == EVENTS

        running.wait_for(committed_covers_only_stored, what="every event stored and committed")
    stats = running.result
    assert stats is not None
    assert (stats.handled, stats.stored, stats.retries) == (0, EVENTS, EVENTS)
    rows = conn.execute("SELECT source_offset, error_message FROM dlq ORDER BY 1").fetchall()
    assert [(r["source_offset"], r["error_message"]) for r in rows] == [
        (n, f"ValueError: async handler cannot project event {n}") for n in range(EVENTS)
    ]


def test_an_async_handler_runs_on_one_event_loop_of_the_consumer(
    broker: EmbeddedBroker, conn: Any, db_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    produce(bootstrap, topic, [(None, encode(event(n)), None) for n in range(EVENTS)])
    settings = make_settings(db_url, bootstrap)
    loops: list[asyncio.AbstractEventLoop] = []
    handled: list[int] = []

    async def handler(value: dict[str, Any]) -> None:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        handled.append(value["n"])

    with RunningConsumer(make_consumer(handler, settings, topic)) as running:
        running.wait_for(lambda: len(handled) == EVENTS, what="every event handled")
    assert handled == list(range(EVENTS))
    assert len(set(map(id, loops))) == 1
    assert loops[0].is_closed()  # the consumer closed its loop on the way out
    assert running.result is not None and running.result.handled == EVENTS
    assert conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"] == 0
