"""Calling a service's handler: plain functions, ``async def`` functions, objects whose
``__call__`` is a coroutine function, and functions that return an awaitable.

Whatever the handler returns that can be awaited is awaited, on one event loop owned by the
caller (created when first needed, closed by :meth:`HandlerCaller.close`): an async handler
that raises fails like a plain one, never "succeeds" by returning an unawaited coroutine
(see docs/consumer.md, "Async handlers").
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


def is_async_handler(handler: Callable[[Any], object]) -> bool:
    """Whether calling ``handler`` returns a coroutine (``async def``, or an object whose
    ``__call__`` is one). Handlers that return some other awaitable are found on the call."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - the method itself is inspected
    return call is not None and inspect.iscoroutinefunction(call)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class HandlerCaller:
    """``caller(event)`` calls the handler and awaits its result when that is awaitable."""

    def __init__(self, handler: Callable[[Any], object]) -> None:
        self.handler = handler
        self.is_async = is_async_handler(handler)
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, event: Any) -> object:
        result = self.handler(event)
        if result is not None and inspect.isawaitable(result):
            return self._run(result)
        return result

    def _run(self, awaitable: Awaitable[Any]) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(_awaited(awaitable))

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop async handlers run on (None until one was needed)."""
        return self._loop

    def close(self) -> None:
        """Cancel what the handlers left running and close the event loop."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
