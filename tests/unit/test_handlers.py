"""Calling handlers: async ones are awaited on one loop, never taken for a success."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dlqctl.core.errors import ConfigError
from dlqctl.core.handlers import HandlerCaller, is_async_handler
from dlqctl.core.settings import Settings
from dlqctl.kafka.consumer import DlqConsumer


async def _fails(event: Any) -> None:
    await asyncio.sleep(0)
    raise ValueError(f"no {event}")


class _AsyncCall:
    async def __call__(self, event: Any) -> str:
        return f"async {event}"


def test_a_plain_handler_is_called_as_is() -> None:
    caller = HandlerCaller(lambda event: f"got {event}")
    assert not caller.is_async
    assert caller(1) == "got 1"
    assert caller.loop is None  # no loop until one is needed


def test_an_async_handler_that_raises_fails() -> None:
    caller = HandlerCaller(_fails)
    assert caller.is_async
    with pytest.raises(ValueError, match="no 7"):
        caller(7)
    caller.close()


def test_async_callables_and_returned_awaitables_are_awaited_on_one_loop() -> None:
    assert is_async_handler(_AsyncCall())
    assert not is_async_handler(lambda e: e)

    async def which_loop(event: Any) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    caller = HandlerCaller(_AsyncCall())
    assert caller("x") == "async x"
    first = caller.loop
    assert first is not None
    returning = HandlerCaller(lambda e: which_loop(e))  # a plain function: seen on the call
    assert not returning.is_async
    assert returning(1) is returning(2) is not first  # one loop per caller
    returning.close()
    caller.close()
    assert first.is_closed()


def test_close_cancels_tasks_a_handler_left_running() -> None:
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def spawns(event: Any) -> None:
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)

    caller = HandlerCaller(spawns)
    caller(1)
    caller.close()
    assert cancelled == [True]
    caller.close()  # twice is fine


def test_run_inside_a_running_event_loop_is_refused_for_an_async_handler() -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", database_url="postgresql:///x")
    consumer = DlqConsumer(_fails, consumer="c", topics=["t"], settings=settings)

    async def main() -> None:
        consumer.run()

    with pytest.raises(ConfigError, match=r"asyncio\.to_thread"):
        asyncio.run(main())
