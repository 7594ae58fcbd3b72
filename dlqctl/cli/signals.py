"""Graceful stops for every long-running command: replay, discard, purge, consume.

The first SIGINT or SIGTERM sets an event the use case polls (and calls ``on_stop``): the
work in flight finishes, is recorded, and the command exits (130; consume exits 0). A
second signal interrupts at once (KeyboardInterrupt): an open transaction rolls back,
which is always safe. The core never installs handlers itself.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger("dlqctl")


@contextmanager
def stop_on_signals(on_stop: Callable[[], None] | None = None) -> Iterator[threading.Event]:
    """An event set by the first SIGINT/SIGTERM; the second raises KeyboardInterrupt."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.info(
            "%s received: finishing the work in flight, then stopping (again to stop at once)",
            signal.Signals(signum).name,
        )
        if on_stop is not None:
            on_stop()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def default_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM act at once again (while a prompt waits for an answer)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
