"""Handlers for process-level tests of `dlqctl consume` (imported by the child process)."""

from __future__ import annotations

import os
import time
from typing import Any


def record(event: dict[str, Any]) -> None:
    """Take a little time per event; fail poison events; log each handled ``n`` to a file."""
    time.sleep(0.005)
    if event.get("poison"):
        raise ValueError(f"cannot project event {event['n']}")
    with open(os.environ["CONSUME_TEST_LOG"], "a") as log:
        log.write(f"{event['n']}\n")
