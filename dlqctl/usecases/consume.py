"""`dlqctl consume`: run the embedded consumer with a handler named as ``module:function``."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from dlqctl.core.errors import UsageError
from dlqctl.core.settings import Settings
from dlqctl.kafka.consumer import ConsumerStats, DlqConsumer

LOGGER = logging.getLogger("dlqctl.consumer")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def load_handler(spec: str) -> Callable[[Any], object]:
    """The callable ``module:function`` names (``module:obj.attr`` too); UsageError if not.

    The working directory is importable, as for other tools that run an app by name.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(
            f"--handler {spec!r} is not module:function (e.g. myservice.handlers:on_event)"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"cannot import handler module {module_name!r}: {exc}") from None
        raise UsageError(
            f"importing handler module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    except Exception as exc:
        raise UsageError(
            f"importing handler module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(
                f"handler {spec!r} not found: {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(target):
        raise UsageError(f"handler {spec!r} is not callable")
    handler: Callable[[Any], object] = target
    return handler


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT ask for a clean stop; a second one acts as usual (interrupts)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        LOGGER.info("%s received: finishing the current event, then stopping",
                    signal.Signals(signum).name)  # fmt: skip
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop()

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def consume(
    settings: Settings,
    *,
    consumer: str,
    topics: Sequence[str],
    handler: str,
    group_id: str | None = None,
    retries: int | None = None,
) -> ConsumerStats:
    """Run the embedded consumer until SIGTERM/SIGINT; returns its counters."""
    function = load_handler(handler)
    dlq_consumer = DlqConsumer(
        function,
        consumer=consumer,
        topics=list(dict.fromkeys(topics)),
        group_id=group_id,
        settings=settings,
        retries=retries,
    )
    with stop_on_signals(dlq_consumer.stop):
        return dlq_consumer.run()
