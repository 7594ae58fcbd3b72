"""Parsing durations (``30s``, ``15m``, ``2h``, ``7d``) and time bounds (ISO-8601 or relative)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(?P<amount>\d+)\s*(?P<unit>[smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Far enough for any DLQ, small enough that now - duration stays a valid datetime.
MAX_DURATION = timedelta(days=365 * 100)

DURATION_HELP = "a duration such as 30s, 15m, 2h, 7d or 2w"
TIME_HELP = "an ISO-8601 time (UTC when no zone is given) or a duration ago such as 30s, 2h, 7d"


def parse_duration(text: str) -> timedelta:
    """``30s`` / ``15m`` / ``2h`` / ``7d`` / ``2w`` → timedelta; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not {DURATION_HELP}")
    seconds = int(match.group("amount")) * _UNIT_SECONDS[match.group("unit").lower()]
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    # Compared before building the timedelta, which overflows on absurd amounts.
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than 100 years")
    return timedelta(seconds=seconds)


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 time (naive means UTC) or a duration ago; always timezone-aware UTC."""
    now = now or datetime.now(UTC)
    stripped = text.strip()
    if _DURATION.match(stripped):
        return now - parse_duration(stripped)
    candidate = stripped[:-1] + "+00:00" if stripped[-1:] in ("Z", "z") else stripped
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(f"{text!r} is not {TIME_HELP}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable time
        raise ValueError(f"{text!r} is out of range") from None


def humanize_age(delta: timedelta) -> str:
    """A short relative age: ``45s``, ``12m``, ``3h``, ``2d``."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
