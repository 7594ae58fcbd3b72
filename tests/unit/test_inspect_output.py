"""Pure pieces of list / show / stats output: JSON streaming, CSV cells, OpenMetrics, text."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dlqctl.cli.output import machine
from dlqctl.cli.output.stats import _bar
from dlqctl.core.models import (
    DlqEntry,
    DlqStats,
    ErrorGroup,
    Header,
    MatchCount,
    Refailures,
    StatsDimension,
    Status,
)
from dlqctl.core.text import one_line
from dlqctl.db.inspect_queries import GroupCount
from dlqctl.usecases.inspect import _time_series, merge_error_groups

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _entry(**overrides: Any) -> DlqEntry:
    values: dict[str, Any] = {
        "dlq_id": uuid.uuid4(),
        "consumer": "orders",
        "event_id": uuid.uuid4(),
        "status": Status.PENDING,
        "retry_count": 0,
        "failed_at": AT,
        "error_message": "boom",
    }
    values.update(overrides)
    return DlqEntry(**values)


def _capture(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stdout", buffer)
    return buffer


@pytest.mark.parametrize("count", [0, 1, 3])
def test_streamed_json_equals_json_dumps(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    items = [{"a": i, "nested": {"b": [1, {"c": "ü\n"}]}, "none": None} for i in range(count)]
    buffer = _capture(monkeypatch)
    assert machine.print_json_items(iter(items), next_cursor="abc", extra={"x": [1]}) == count
    expected = {"items": items, "next_cursor": "abc", "extra": {"x": [1]}}
    assert buffer.getvalue() == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"


def test_entry_json_keys_are_the_csv_header() -> None:
    entry = _entry(event_headers=(Header("k", b"v"),), event_key=b"\xff")
    assert tuple(entry.to_json()) == machine.ENTRY_FIELDS
    assert tuple(entry.to_json(details=True)) == machine.DETAIL_FIELDS
    full = entry.to_json(full=True)
    # show: the list --payload fields first ("edited" is show's object, at the end).
    assert tuple(full)[: len(machine.DETAIL_FIELDS) - 1] == machine.DETAIL_FIELDS[:-1]
    assert tuple(full)[-2:] == ("attempts", "edited")
    assert full["event_key"] == "base64:/w=="
    assert full["event_headers"] == [["k", "v"]]


def test_csv_cells() -> None:
    assert machine.csv_cell(None) == ""
    assert machine.csv_cell({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert machine.csv_cell(3) == 3


def test_openmetrics_escapes_labels_and_ends_with_eof() -> None:
    odd = 'we"ird\\name\nx'
    stats = DlqStats(
        counts=(MatchCount(odd, Status.PENDING, 2), MatchCount("orders", Status.REPLAYED, 5)),
        oldest_pending={odd: AT - timedelta(seconds=90, milliseconds=500)},
        error_groups=(),
        as_of=AT,
    )
    text = machine.openmetrics_text(stats, (Status.PENDING, Status.REPLAYED))
    lines = text.splitlines()
    assert lines[-1] == "# EOF"
    assert lines[-3:-1] == [
        'dlq_refailures{consumer="orders"} 0',
        'dlq_refailures{consumer="we\\"ird\\\\name\\nx"} 0',
    ]
    assert text.endswith("# EOF\n")
    assert lines.count("# EOF") == 1
    escaped = 'we\\"ird\\\\name\\nx'
    assert f'dlq_entries{{consumer="{escaped}",status="pending"}} 2' in lines
    assert f'dlq_entries{{consumer="{escaped}",status="replayed"}} 0' in lines
    assert 'dlq_entries{consumer="orders",status="pending"} 0' in lines
    assert 'dlq_entries{consumer="orders",status="replayed"} 5' in lines
    assert f'dlq_oldest_pending_age_seconds{{consumer="{escaped}"}} 90.500' in lines
    assert "# TYPE dlq_entries gauge" in lines
    assert "# TYPE dlq_oldest_pending_age_seconds gauge" in lines
    # Metadata of a family comes before its samples.
    assert lines.index("# TYPE dlq_oldest_pending_age_seconds gauge") > max(
        i for i, line in enumerate(lines) if line.startswith("dlq_entries{")
    )


def test_stats_json_shape() -> None:
    stats = DlqStats(
        counts=(MatchCount("a", Status.PENDING, 2),),
        oldest_pending={"a": AT},
        error_groups=tuple(ErrorGroup(f"e{i}", 10 - i, f"x{i}") for i in range(5)),
        as_of=AT,
        by=StatsDimension.CONSUMER,
        refailures={"a": Refailures(entries=1, attempts=3)},
    )
    data = stats.to_json(top=2)
    assert list(data) == [
        "total",
        "by_consumer_status",
        "oldest_pending_failed_at",
        "oldest_pending_by_consumer",
        "error_groups",
        "as_of",
        "failed_again",
        "by",
        "breakdown",
    ]
    assert data["failed_again"] == {
        "entries": 1,
        "attempts": 3,
        "by_consumer": {"a": {"entries": 1, "attempts": 3}},
    }
    assert data["total"] == 2
    assert data["by_consumer_status"] == [{"consumer": "a", "status": "pending", "count": 2}]
    assert data["oldest_pending_failed_at"] == "2026-11-28T10:00:00Z"
    assert data["oldest_pending_by_consumer"] == {"a": "2026-11-28T10:00:00Z"}
    assert data["error_groups"] == [
        {"fingerprint": "e0", "count": 10, "example": "x0"},
        {"fingerprint": "e1", "count": 9, "example": "x1"},
    ]


def test_merge_error_groups_adds_up_consumers_and_statuses() -> None:
    groups = merge_error_groups(
        [
            GroupCount("a", Status.PENDING, "took <n>ms", 5, "took 9ms"),
            GroupCount("b", Status.PENDING, "took <n>ms", 1, "took 10ms"),
            GroupCount("a", Status.REPLAYED, "other", 6, "other"),
            GroupCount("b", Status.DISCARDED, "fresh <str>", 4, "fresh 'x'"),
        ]
    )
    assert [(g.fingerprint, g.count, g.example) for g in groups] == [
        ("other", 6, "other"),
        ("took <n>ms", 6, "took 10ms"),
        ("fresh <str>", 4, "fresh 'x'"),
    ]


def test_time_series_fills_gaps() -> None:
    hour = timedelta(hours=1)
    series = _time_series([(AT, 3), (AT + 3 * hour, 1)], hour)
    assert [(b.key, b.count) for b in series] == [
        ("2026-11-28T10:00:00Z", 3),
        ("2026-11-28T11:00:00Z", 0),
        ("2026-11-28T12:00:00Z", 0),
        ("2026-11-28T13:00:00Z", 1),
    ]
    assert _time_series([], hour) == ()


def test_stats_rows_for_csv_and_ndjson() -> None:
    from dlqctl.core.models import Bucket

    plain = DlqStats(
        counts=(MatchCount("a", Status.PENDING, 2),), oldest_pending={}, error_groups=(), as_of=AT
    )
    assert machine.stats_rows(plain) == (
        ("consumer", "status", "count"),
        [{"consumer": "a", "status": "pending", "count": 2}],
    )
    by_error = DlqStats(
        counts=(),
        oldest_pending={},
        error_groups=(),
        as_of=AT,
        by=StatsDimension.ERROR,
        breakdown=(Bucket("e <n>", 3, example="e 1"),),
    )
    assert machine.stats_rows(by_error) == (
        ("error", "count", "example"),
        [{"error": "e <n>", "count": 3, "example": "e 1"}],
    )


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("a   b\tc", 10, "a b c"),
        (
            "\n\nTraceback (most recent call last):\n  File x",
            100,
            "Traceback (most recent call last): …",
        ),
        ("x" * 30, 10, "x" * 9 + "…"),
        ("", 10, ""),
    ],
)
def test_one_line(text: str, limit: int, expected: str) -> None:
    assert one_line(text, limit, first_line_only=True) == expected


def test_bars() -> None:
    assert _bar(0, 10) == ""
    assert _bar(10, 10) == "█" * 48
    assert _bar(1, 10**6) == "▏"  # never invisible when non-zero
    assert len(_bar(5, 10)) == 24
