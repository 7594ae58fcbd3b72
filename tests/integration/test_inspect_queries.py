"""list / show / stats use cases on real PostgreSQL, checked against hand-written SQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from dlqctl.core.cursor import Position
from dlqctl.core.errors import AmbiguousIdError, NotFoundError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.fingerprint import fingerprint
from dlqctl.core.ids import parse_id
from dlqctl.core.models import StatsDimension, Status
from dlqctl.core.settings import Settings
from dlqctl.usecases.inspect import compute_stats, iter_entries, list_page, show_entry
from tests.factories import BASE_TIME, entry, insert_entries, make_settings

CONSUMERS = ("orders", "payments", "o'brien", "a_b", "100%")
STATUSES = ("pending", "replayed", "discarded")
ERRORS = (
    "TimeoutError: call took 1500ms",
    "TimeoutError: call took 30ms",
    "ValueError: 100% of 'budget' used",
    "KeyError: under_score missing",
    "OSError: path C:\\temp\\x not found",
    'HTTPError: 503 from "inventory"',
    "MixedCase Error: Something BAD",
)


def _rows() -> list[dict[str, Any]]:
    """240 entries; many share one failed_at, so pages end in the middle of ties."""
    rows = []
    for i in range(240):
        at = BASE_TIME + timedelta(minutes=i // 40)  # six runs of 40 identical timestamps
        rows.append(
            entry(
                consumer=CONSUMERS[i % len(CONSUMERS)],
                status=STATUSES[(i // 3) % len(STATUSES)],
                failed_at=at,
                error_message=ERRORS[i % len(ERRORS)],
                error_fingerprint=fingerprint(ERRORS[i % len(ERRORS)]) if i % 2 else None,
                retry_count=i % 4,
            )
        )
    return rows


@pytest.fixture
def loaded(conn: Any, db_url: str) -> tuple[Any, Settings, list[dict[str, Any]]]:
    rows = _rows()
    insert_entries(conn, rows)
    return conn, make_settings(db_url), rows


def _expected(conn: Any, where: str, params: dict[str, Any]) -> list[uuid.UUID]:
    query = f"SELECT dlq_id FROM dlq WHERE {where} ORDER BY failed_at DESC, dlq_id DESC"
    return [r["dlq_id"] for r in conn.execute(query, params)]


# (EntryFilter keyword arguments, equivalent hand-written SQL condition, its parameters)
FILTER_CASES: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
    ({}, "true", {}),
    ({"consumers": ("orders",)}, "consumer = 'orders'", {}),
    ({"consumers": ("o'brien", "a_b")}, "consumer IN ('o''brien', 'a_b')", {}),
    ({"consumers": ("a%",)}, "false", {}),
    ({"statuses": (Status.PENDING,)}, "status = 'pending'", {}),
    (
        {"statuses": (Status.REPLAYED, Status.DISCARDED)},
        "status IN ('replayed', 'discarded')",
        {},
    ),
    (
        {"since": BASE_TIME + timedelta(minutes=2)},
        "failed_at >= %(t)s",
        {"t": BASE_TIME + timedelta(minutes=2)},
    ),
    (
        {"until": BASE_TIME + timedelta(minutes=2)},
        "failed_at < %(t)s",
        {"t": BASE_TIME + timedelta(minutes=2)},
    ),
    ({"error": "timeouterror"}, "position('timeouterror' in lower(error_message)) > 0", {}),
    ({"error": "100%"}, "position('100%%' in error_message) > 0", {}),
    ({"error": "%"}, "position('%%' in error_message) > 0", {}),
    ({"error": "unde_"}, "false", {}),  # a LIKE wildcard would match "under"
    ({"error": "under_score"}, "position('under_score' in error_message) > 0", {}),
    ({"error": "c:\\temp\\"}, "position('C:\\temp\\' in error_message) > 0", {}),
    ({"error": "'budget'"}, "position('''budget''' in error_message) > 0", {}),
    ({"error": '"inventory"'}, "position('\"inventory\"' in error_message) > 0", {}),
    (
        {
            "consumers": ("orders", "payments", "100%"),
            "statuses": (Status.PENDING, Status.DISCARDED),
            "since": BASE_TIME + timedelta(minutes=1),
            "until": BASE_TIME + timedelta(minutes=5),
            "error": "error",
        },
        "consumer IN ('orders', 'payments', '100%%') AND status IN ('pending', 'discarded')"
        " AND failed_at >= %(a)s AND failed_at < %(b)s"
        " AND position('error' in lower(error_message)) > 0",
        {"a": BASE_TIME + timedelta(minutes=1), "b": BASE_TIME + timedelta(minutes=5)},
    ),
    ({"consumers": ("nobody",)}, "false", {}),
]


@pytest.mark.parametrize(("kwargs", "where", "params"), FILTER_CASES)
def test_pages_and_stream_match_sql(
    loaded: tuple[Any, Settings, list[dict[str, Any]]],
    kwargs: dict[str, Any],
    where: str,
    params: dict[str, Any],
) -> None:
    conn, settings, _ = loaded
    expected = _expected(conn, where, params)
    entry_filter = EntryFilter(**kwargs)
    seen: list[uuid.UUID] = []
    after = None
    for _ in range(100):
        page = list_page(settings, entry_filter, limit=7, after=after)
        assert len(page.entries) <= 7
        seen += [e.dlq_id for e in page.entries]
        if page.next_position is None:
            break
        after = page.next_position
    assert seen == expected  # nothing lost, nothing repeated, newest first
    assert [e.dlq_id for e in iter_entries(settings, entry_filter)] == expected


def test_event_id_filter(loaded: tuple[Any, Settings, list[dict[str, Any]]]) -> None:
    _conn, settings, rows = loaded
    target = rows[17]
    page = list_page(settings, EntryFilter(event_id=target["event_id"]), limit=5)
    assert [e.dlq_id for e in page.entries] == [target["dlq_id"]]
    assert page.next_position is None


def test_first_page_has_a_next_position_exactly_when_more_exist(
    loaded: tuple[Any, Settings, list[dict[str, Any]]],
) -> None:
    _, settings, _ = loaded
    orders = EntryFilter(consumers=("orders",))  # 48 entries
    assert list_page(settings, orders, limit=48).next_position is None
    page = list_page(settings, orders, limit=47)
    assert page.next_position == Position(page.entries[-1].failed_at, page.entries[-1].dlq_id)
    assert page.next_cursor is not None


def test_stream_resumes_after_a_position(
    loaded: tuple[Any, Settings, list[dict[str, Any]]],
) -> None:
    conn, settings, _ = loaded
    everything = _expected(conn, "true", {})
    page = list_page(settings, EntryFilter(), limit=45)
    rest = [e.dlq_id for e in iter_entries(settings, EntryFilter(), after=page.next_position)]
    assert [e.dlq_id for e in page.entries] + rest == everything


def test_payload_adds_the_details(conn: Any, db_url: str) -> None:
    (_dlq_id,) = insert_entries(
        conn,
        [
            entry(
                event_payload={"a": [1, 2]},
                source_topic="t",
                source_partition=2,
                source_offset=41,
                event_key=b"k-1",
                event_headers=[["h", "dg=="]],
            )
        ],
    )
    settings = make_settings(db_url)
    plain = list_page(settings, EntryFilter(), limit=1).entries[0]
    assert plain.event_payload is None and plain.source_topic is None
    detailed = list_page(settings, EntryFilter(), limit=1, payload=True).entries[0]
    data = detailed.to_json(details=True)
    assert data["event_payload"] == {"a": [1, 2]}
    assert (data["source_topic"], data["source_partition"], data["source_offset"]) == ("t", 2, 41)
    assert data["event_key"] == "k-1"
    assert data["event_headers"] == [["h", "v"]]
    assert [
        e.to_json(details=True) for e in iter_entries(settings, EntryFilter(), payload=True)
    ] == [data]


def test_show_resolves_prefixes(conn: Any, db_url: str) -> None:
    a = uuid.UUID("0193a1b2-c3d4-7e5f-8a9b-000000000001")
    b = uuid.UUID("0193a1b2-c3d4-7e5f-8a9b-000000000002")
    c = uuid.UUID("7f000000-0000-4000-8000-00000000abcd")
    insert_entries(
        conn,
        [
            entry(dlq_id=a),
            entry(dlq_id=b, status="replayed"),
            entry(dlq_id=c, event_raw=b"\xff\x00"),
        ],
    )
    settings = make_settings(db_url)
    assert show_entry(settings, parse_id(str(b))).status is Status.REPLAYED
    assert show_entry(settings, parse_id("7F000000-0000")).dlq_id == c
    assert show_entry(settings, parse_id("7f00000000004000")).event_raw == b"\xff\x00"
    with pytest.raises(AmbiguousIdError) as ambiguous:
        show_entry(settings, parse_id("0193a1b2c3d47e5f"))
    assert set(ambiguous.value.candidates) == {str(a), str(b)}
    with pytest.raises(NotFoundError):
        show_entry(settings, parse_id("0193a1b2c3d47e5f8a9b000000000003"))


def test_stats_counts_and_oldest_pending_match_sql(
    loaded: tuple[Any, Settings, list[dict[str, Any]]],
) -> None:
    conn, settings, _ = loaded
    stats = compute_stats(settings, EntryFilter())
    expected = conn.execute(
        "SELECT consumer, status, count(*) AS n FROM dlq GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    assert [(c.consumer, c.status.value, c.count) for c in stats.counts] == [
        (r["consumer"], r["status"], r["n"]) for r in expected
    ]
    assert stats.total == 240
    oldest = conn.execute(
        "SELECT consumer, min(failed_at) AS at FROM dlq WHERE status = 'pending' GROUP BY 1"
    ).fetchall()
    assert stats.oldest_pending == {r["consumer"]: r["at"] for r in oldest}
    assert stats.oldest_pending_failed_at == min(r["at"] for r in oldest)


def test_stats_groups_stored_and_unstored_fingerprints_together(
    loaded: tuple[Any, Settings, list[dict[str, Any]]],
) -> None:
    _, settings, rows = loaded
    stats = compute_stats(settings, EntryFilter())
    groups = {g.fingerprint: g.count for g in stats.error_groups}
    expected: dict[str, int] = {}
    for row in rows:
        key = fingerprint(row["error_message"])
        expected[key] = expected.get(key, 0) + 1
    assert groups == expected
    # The two timeouts differ only in a number glued to "ms": one group of both.
    timeout = fingerprint("TimeoutError: call took 1500ms")
    assert groups[timeout] == sum(1 for r in rows if r["error_message"].startswith("Timeout"))
    counts = [g.count for g in stats.error_groups]
    assert counts == sorted(counts, reverse=True)
    for g in stats.error_groups:
        assert fingerprint(g.example) == g.fingerprint


def test_stats_respects_filters_and_never_writes(
    loaded: tuple[Any, Settings, list[dict[str, Any]]],
) -> None:
    conn, settings, _ = loaded
    before = conn.execute(
        "SELECT md5(string_agg(dlq::text, ',' ORDER BY dlq_id)) FROM dlq"
    ).fetchone()
    stats = compute_stats(
        settings, EntryFilter(consumers=("a_b",), statuses=(Status.REPLAYED,), error="%")
    )
    n = conn.execute(
        "SELECT count(*) AS n FROM dlq WHERE consumer = 'a_b' AND status = 'replayed'"
        " AND position('%%' in error_message) > 0",
        {},
    ).fetchone()["n"]
    assert stats.total == n > 0
    assert stats.oldest_pending == {}
    assert sum(g.count for g in stats.error_groups) == n
    after = conn.execute(
        "SELECT md5(string_agg(dlq::text, ',' ORDER BY dlq_id)) FROM dlq"
    ).fetchone()
    assert before == after


def test_stats_by_hour_and_day_fill_gaps(conn: Any, db_url: str) -> None:
    insert_entries(
        conn,
        [
            entry(failed_at=BASE_TIME + timedelta(hours=1, minutes=5)),
            entry(failed_at=BASE_TIME + timedelta(hours=1, minutes=59)),
            entry(failed_at=BASE_TIME + timedelta(hours=4)),
            entry(failed_at=BASE_TIME + timedelta(days=2, hours=23)),
        ],
    )
    settings = make_settings(db_url)
    hours = compute_stats(
        settings, EntryFilter(until=BASE_TIME + timedelta(days=1)), by=StatsDimension.HOUR
    )
    assert [(b.key, b.count) for b in hours.breakdown] == [
        ("2026-11-01T01:00:00Z", 2),
        ("2026-11-01T02:00:00Z", 0),
        ("2026-11-01T03:00:00Z", 0),
        ("2026-11-01T04:00:00Z", 1),
    ]
    days = compute_stats(settings, EntryFilter(), by=StatsDimension.DAY)
    assert [(b.key, b.count) for b in days.breakdown] == [
        ("2026-11-01T00:00:00Z", 3),
        ("2026-11-02T00:00:00Z", 0),
        ("2026-11-03T00:00:00Z", 1),
    ]


def test_stats_breakdowns(loaded: tuple[Any, Settings, list[dict[str, Any]]]) -> None:
    _, settings, rows = loaded
    by_consumer = compute_stats(settings, EntryFilter(), by=StatsDimension.CONSUMER)
    assert {b.key: b.count for b in by_consumer.breakdown} == dict.fromkeys(CONSUMERS, 48)
    by_status = compute_stats(settings, EntryFilter(), by=StatsDimension.STATUS)
    assert {b.key: b.count for b in by_status.breakdown} == {
        s: sum(1 for r in rows if r["status"] == s) for s in STATUSES
    }
    by_error = compute_stats(settings, EntryFilter(), by=StatsDimension.ERROR)
    assert [(b.key, b.count) for b in by_error.breakdown] == [
        (g.fingerprint, g.count) for g in by_error.error_groups
    ]


def test_stats_of_nothing(db_url: str) -> None:
    stats = compute_stats(make_settings(db_url), EntryFilter(), by=StatsDimension.HOUR)
    assert stats.total == 0
    assert stats.to_json(top=10)["oldest_pending_failed_at"] is None
    assert stats.breakdown == ()


def test_entries_of_dlqctls_writer_and_of_other_writers_group_together(
    conn: Any, db_url: str
) -> None:
    from dlqctl.db.writer import DlqWriter

    with DlqWriter(db_url) as writer:
        stored = writer.write("orders", {"id": 1}, TimeoutError("call took 1500ms"))
    insert_entries(conn, [entry(consumer="legacy", error_message="TimeoutError: call took 9ms")])
    settings = make_settings(db_url)
    stats = compute_stats(settings, EntryFilter())
    assert [(g.fingerprint, g.count) for g in stats.error_groups] == [
        ("TimeoutError: call took <n>ms", 2)
    ]
    shown = show_entry(settings, parse_id(str(stored.dlq_id)))
    assert shown.error_fingerprint == "TimeoutError: call took <n>ms"
    assert shown.event_payload == {"id": 1}
