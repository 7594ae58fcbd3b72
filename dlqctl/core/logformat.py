"""Log lines as JSON objects, one a line, for log pipelines (``dlqctl consume --log-format
json``; a service can use the formatter with its own handler). See docs/consumer.md, "Logs".

Each line has ``ts`` (ISO-8601 UTC), ``level``, ``msg``, ``logger`` and the record's extra
fields (``consumer``, ``event_id``, ``topic``, ``partition``, ``offset``, ``dlq_id``, ...).
Every text value passes through the scrubber *before* it is encoded, so a secret is masked
even where JSON escaping would change how it is written.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has: anything else on a record came in through ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName"}
)


def _jsonable(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v, scrub) for v in value]
    if isinstance(value, dict):
        return {scrub(str(k)): _jsonable(v, scrub) for k, v in value.items()}
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``msg``, ``logger`` and extra fields."""

    def __init__(self, scrub: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._scrub: Callable[[str], str] = scrub or (lambda text: text)

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        data: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "msg": self._scrub(record.getMessage()),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in data:
                data[key] = _jsonable(value, self._scrub)
        if record.exc_info:
            data["exc"] = self._scrub(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
