"""Ctrl-C and SIGTERM during a batched write: finish the current batch, then stop.

The first signal only sets a flag that the use case checks between batches, so what was
committed is counted and recorded; the handler is then put back, so a second signal
interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Yield a function that tells whether SIGINT or SIGTERM arrived inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested = threading.Event()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        requested.set()
        signal.signal(signum, previous[signum])

    for sig in _SIGNALS:
        previous[sig.value] = signal.signal(sig, handler)
    try:
        yield requested.is_set
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
