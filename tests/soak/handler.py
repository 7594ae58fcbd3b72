"""The handler the chaos soak runs in its `dlqctl consume` child (see docs/operations.md).

An event says how it behaves in its ``kind``:

- ``ok``: handled;
- ``fail``: always fails (its entry bounces between pending and replayed until discarded);
- ``until-A``, ``until-B``: fail until the soak "deploys the fix" for that class, by creating
  the file ``$SOAK_FIX_DIR/until-A`` (then replays of their entries succeed);
- ``filler``: handled, not logged (the soak pads partitions with them after a broker restart).

Every other call is logged as one line, ``<unix time> <event_id> ok|fail``, to
``$SOAK_HANDLER_LOG``: the soak's record of what the consumer received and how it ended.
"""

from __future__ import annotations

import os
import time
from typing import Any, TextIO

_log: TextIO | None = None


def _record(event_id: str, outcome: str) -> None:
    global _log
    if _log is None:
        _log = open(os.environ["SOAK_HANDLER_LOG"], "a", buffering=1)  # noqa: SIM115
    _log.write(f"{time.time():.6f} {event_id} {outcome}\n")


def failing(kind: str) -> bool:
    """Whether an event of this kind fails now."""
    if kind == "fail":
        return True
    if kind.startswith("until-"):
        return not os.path.exists(os.path.join(os.environ["SOAK_FIX_DIR"], kind))
    return False


def handle(event: Any) -> None:
    kind = event.get("kind") if isinstance(event, dict) else None
    if kind == "filler":
        return
    event_id = str(event.get("event_id")) if isinstance(event, dict) else "?"
    if failing(str(kind)):
        _record(event_id, "fail")
        raise ValueError(f"soak {kind} event {event.get('n')} cannot be projected")
    _record(event_id, "ok")
