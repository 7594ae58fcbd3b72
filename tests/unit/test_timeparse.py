from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dlqctl.core.timeparse import humanize_age, parse_duration, parse_time

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "7", "d", "-7d", "7x", "1.5h", "0s", "7 days", "99999999d", "1000000000d", "99999999999w"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration|zero|longer"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T10:00:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T12:00:00+02:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01 10:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text, now=NOW)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-11-01T25:00", "", "now-2h"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time(text, now=NOW)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_time_rejects_times_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_time(text, now=NOW)


def test_humanize_age() -> None:
    assert humanize_age(timedelta(seconds=5)) == "5s"
    assert humanize_age(timedelta(minutes=5, seconds=3)) == "5m"
    assert humanize_age(timedelta(hours=26)) == "1d"
