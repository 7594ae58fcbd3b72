"""discard and purge against the real database: exact sets, skipped locks, stops, the audit row."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from dlqctl.core.cleanup import DiscardRequest, PurgeRequest
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import parse_id
from dlqctl.core.models import Status
from dlqctl.db.audit import list_actions
from dlqctl.db.cleanup_queries import DELETE, Keyset, batch_statement
from dlqctl.db.filters import fence_plans
from dlqctl.usecases.cleanup import discard, purge
from tests.factories import entry, insert_entries, make_settings
from tests.fakes import InsertOnEachBatch, StopAfter

NOW = datetime.now(UTC)
CONSUMERS = ("orders", "payments", "billing")
ERRORS = (
    "TimeoutError: upstream 504 after 3000ms",
    "ValueError: unknown currency 'XYZ'",
    "KeyError: 100%_off",
)
AGES_DAYS = (1, 10, 29, 31, 45, 90)
TIE_AT = NOW - timedelta(days=40)


def dataset(conn: Any, tie_rows: int = 40) -> None:
    """Every consumer × status × age × error twice, plus rows that share one failed_at."""
    rows = []
    for consumer in CONSUMERS:
        for status in Status:
            for days in AGES_DAYS:
                for i, error in enumerate(ERRORS):
                    for copy in range(2):
                        at = NOW - timedelta(days=days, minutes=7 * i + copy)
                        rows.append(
                            entry(
                                consumer=consumer,
                                status=status.value,
                                failed_at=at,
                                error_message=error,
                            )
                        )
    rows += [
        entry(consumer="orders", status=s, failed_at=TIE_AT, error_message=ERRORS[0])
        for s in ("replayed", "pending")
        for _ in range(tie_rows)
    ]
    insert_entries(conn, rows)


def ids_where(conn: Any, condition: str, params: dict[str, Any] | None = None) -> set[uuid.UUID]:
    return {r["dlq_id"] for r in conn.execute(f"SELECT dlq_id FROM dlq WHERE {condition}", params)}


def all_ids(conn: Any) -> set[uuid.UUID]:
    return ids_where(conn, "true")


CUT30 = {"cut": NOW - timedelta(days=30)}

PURGE_CASES: list[tuple[str, EntryFilter, str, dict[str, Any]]] = [
    (
        "defaults",
        EntryFilter(),
        "status IN ('replayed', 'discarded') AND failed_at < %(cut)s",
        CUT30,
    ),
    (
        "consumers",
        EntryFilter(consumers=("orders", "billing")),
        "status IN ('replayed', 'discarded') AND failed_at < %(cut)s"
        " AND consumer IN ('orders', 'billing')",
        CUT30,
    ),
    (
        "pending spelled out",
        EntryFilter(statuses=(Status.PENDING,)),
        "status = 'pending' AND failed_at < %(cut)s",
        CUT30,
    ),
    ("all statuses", EntryFilter(statuses=tuple(Status)), "failed_at < %(cut)s", CUT30),
    (
        "error text",
        EntryFilter(error="CURRENCY 'x"),
        "status IN ('replayed', 'discarded') AND failed_at < %(cut)s"
        " AND error_message ILIKE '%%currency ''x%%'",
        CUT30,
    ),
    (
        "literal percent",
        EntryFilter(error="100%_"),
        "status IN ('replayed', 'discarded') AND failed_at < %(cut)s"
        " AND error_message LIKE '%%100\\%%\\_%%'",
        CUT30,
    ),
    (
        "since",
        EntryFilter(since=NOW - timedelta(days=60)),
        "status IN ('replayed', 'discarded') AND failed_at < %(cut)s AND failed_at >= %(since)s",
        {**CUT30, "since": NOW - timedelta(days=60)},
    ),
    (
        "until before the cutoff",
        EntryFilter(until=TIE_AT),
        "status IN ('replayed', 'discarded') AND failed_at < %(tie)s",
        {"tie": TIE_AT},
    ),
    (
        "consumer and status",
        EntryFilter(consumers=("payments",), statuses=(Status.DISCARDED,)),
        "status = 'discarded' AND consumer = 'payments' AND failed_at < %(cut)s",
        CUT30,
    ),
]


@pytest.mark.parametrize("batch_size", [1, 7, 5000])
@pytest.mark.parametrize(
    ("entry_filter", "condition", "params"),
    [pytest.param(f, c, p, id=name) for name, f, c, p in PURGE_CASES],
)
def test_purge_deletes_exactly_what_sql_selects(
    conn: Any,
    db_url: str,
    entry_filter: EntryFilter,
    condition: str,
    params: dict[str, Any],
    batch_size: int,
) -> None:
    dataset(conn)
    before = all_ids(conn)
    expected = ids_where(conn, condition, params)
    assert expected, "the case must select something"
    request = PurgeRequest(entry_filter, timedelta(days=30), "30d", batch_size=batch_size)
    result = purge(make_settings(db_url), request)
    assert before - all_ids(conn) == expected
    write = result.write
    assert (write.matched, write.succeeded, write.skipped, write.failed) == (
        len(expected),
        len(expected),
        0,
        0,
    )
    assert write.outcome == "ok"
    [record] = list_actions(conn, action="purge")
    assert record.counts["succeeded"] == len(expected)
    assert record.details["batch_size"] == batch_size
    assert record.details["older_than"] == "30d"


def test_purge_event_id(conn: Any, db_url: str) -> None:
    target = entry(status="replayed", failed_at=NOW - timedelta(days=50))
    twin = entry(status="replayed", failed_at=NOW - timedelta(days=50))
    insert_entries(conn, [target, twin])
    request = PurgeRequest(EntryFilter(event_id=target["event_id"]), timedelta(days=30), "30d")
    assert purge(make_settings(db_url), request).write.succeeded == 1
    assert all_ids(conn) == {twin["dlq_id"]}


def test_purge_never_deletes_pending_unless_asked(conn: Any, db_url: str) -> None:
    dataset(conn)
    pending = ids_where(conn, "status = 'pending'")
    purge(make_settings(db_url), PurgeRequest(EntryFilter(), timedelta(seconds=1), "1s"))
    assert ids_where(conn, "true") == pending


def test_purge_dry_run_writes_nothing(conn: Any, db_url: str) -> None:
    dataset(conn)
    before = conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall()
    request = PurgeRequest(
        EntryFilter(consumers=("orders",)), timedelta(days=30), "30d", dry_run=True
    )
    result = purge(make_settings(db_url), request)
    assert conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall() == before
    assert list_actions(conn) == []
    expected = conn.execute(
        "SELECT status, count(*) AS n, min(failed_at) AS lo, max(failed_at) AS hi FROM dlq"
        " WHERE consumer = 'orders' AND status <> 'pending' AND failed_at < %s GROUP BY status",
        (NOW - timedelta(days=30),),
    ).fetchall()
    assert result.preview is not None
    assert {(c.consumer, c.status.value, c.count) for c in result.preview.counts} == {
        ("orders", r["status"], r["n"]) for r in expected
    }
    assert result.preview.oldest_failed_at == min(r["lo"] for r in expected)
    assert result.preview.newest_failed_at == max(r["hi"] for r in expected)
    assert result.write.matched == result.write.succeeded == sum(r["n"] for r in expected)


DISCARD_CASES: list[tuple[str, EntryFilter, str]] = [
    ("consumer", EntryFilter(consumers=("orders",)), "consumer = 'orders'"),
    ("error", EntryFilter(error="timeout"), "error_message ILIKE '%%timeout%%'"),
    (
        "window",
        EntryFilter(since=NOW - timedelta(days=35), until=NOW - timedelta(days=5)),
        "failed_at >= %(since)s AND failed_at < %(until)s",
    ),
    (
        "two consumers and error",
        EntryFilter(consumers=("orders", "billing"), error="currency"),
        "consumer IN ('orders', 'billing') AND error_message ILIKE '%%currency%%'",
    ),
]


@pytest.mark.parametrize("cleanup_batch", [3, 2000])
@pytest.mark.parametrize(
    ("entry_filter", "condition"), [pytest.param(f, c, id=n) for n, f, c in DISCARD_CASES]
)
def test_discard_changes_exactly_the_pending_rows_sql_selects(
    conn: Any,
    db_url: str,
    entry_filter: EntryFilter,
    condition: str,
    cleanup_batch: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dlqctl.usecases.cleanup.DISCARD_BATCH", cleanup_batch)
    dataset(conn)
    params = {"since": NOW - timedelta(days=35), "until": NOW - timedelta(days=5)}
    expected = ids_where(conn, f"status = 'pending' AND {condition}", params)
    untouched = conn.execute(
        "SELECT * FROM dlq WHERE NOT dlq_id = ANY(%s) ORDER BY dlq_id", (list(expected),)
    ).fetchall()
    request = DiscardRequest(entry_filter, reason="bad deploy 1.4.2")
    result = discard(make_settings(db_url, actor="alice"), request)
    assert (result.write.matched, result.write.succeeded, result.write.skipped) == (
        len(expected),
        len(expected),
        0,
    )
    changed = conn.execute(
        "SELECT status, status_reason, status_changed_by, status_changed_at FROM dlq"
        " WHERE dlq_id = ANY(%s)",
        (list(expected),),
    ).fetchall()
    assert len(changed) == len(expected)
    assert {(r["status"], r["status_reason"], r["status_changed_by"]) for r in changed} == {
        ("discarded", "bad deploy 1.4.2", "alice")
    }
    assert all(r["status_changed_at"] is not None for r in changed)
    assert (
        conn.execute(
            "SELECT * FROM dlq WHERE NOT dlq_id = ANY(%s) ORDER BY dlq_id", (list(expected),)
        ).fetchall()
        == untouched
    )
    [record] = list_actions(conn, action="discard")
    assert (record.actor, record.reason, record.outcome) == ("alice", "bad deploy 1.4.2", "ok")


def test_discard_explicit_ids_reports_ineligible(conn: Any, db_url: str) -> None:
    pending, replayed, other_consumer = insert_entries(
        conn, [entry(), entry(status="replayed"), entry(consumer="billing")]
    )
    ids = tuple(parse_id(str(i)) for i in (pending, replayed, other_consumer))
    request = DiscardRequest(EntryFilter(consumers=("orders",), ids=ids), reason="junk")
    result = discard(make_settings(db_url), request)
    assert result.ineligible_ids == [replayed, other_consumer]
    assert (result.write.matched, result.write.succeeded, result.write.ineligible) == (1, 1, 2)
    assert ids_where(conn, "status = 'discarded'") == {pending}
    [record] = list_actions(conn, action="discard")
    assert set(record.ids or ()) == {pending, replayed, other_consumer}


def hold_row_locks(db_url: str, ids: list[uuid.UUID]) -> psycopg.Connection[Any]:
    """A transaction that holds row locks on ``ids``, as a replay's claim does."""
    holder = psycopg.connect(db_url, row_factory=dict_row)
    holder.execute("SELECT dlq_id FROM dlq WHERE dlq_id = ANY(%s) FOR UPDATE", (ids,)).fetchall()
    return holder


def run_with_guard(fn: Callable[[], Any], seconds: float = 120) -> Any:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the run waited on locked rows"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_purge_skips_rows_a_replay_holds_and_does_not_wait(conn: Any, db_url: str) -> None:
    old = NOW - timedelta(days=60)
    ids = insert_entries(conn, [entry(status="replayed", failed_at=old) for _ in range(30)])
    locked = ids[5:12]
    holder = hold_row_locks(db_url, locked)
    try:
        request = PurgeRequest(EntryFilter(), timedelta(days=30), "30d", batch_size=4)
        result = run_with_guard(lambda: purge(make_settings(db_url), request))
        assert all_ids(conn) == set(locked)
        assert (result.write.matched, result.write.succeeded, result.write.skipped) == (30, 23, 7)
    finally:
        holder.rollback()
        holder.close()
    again = purge(make_settings(db_url), PurgeRequest(EntryFilter(), timedelta(days=30), "30d"))
    assert again.write.succeeded == 7
    assert all_ids(conn) == set()


def test_discard_skips_locked_rows_by_filter_and_by_id(conn: Any, db_url: str) -> None:
    ids = insert_entries(conn, [entry(consumer="orders") for _ in range(20)])
    holder = hold_row_locks(db_url, ids[:3])
    try:
        by_filter = run_with_guard(
            lambda: discard(
                make_settings(db_url), DiscardRequest(EntryFilter(consumers=("orders",)))
            )
        )
        assert (by_filter.write.succeeded, by_filter.write.skipped) == (17, 3)
        by_id = run_with_guard(
            lambda: discard(
                make_settings(db_url), DiscardRequest(EntryFilter(ids=(parse_id(str(ids[0])),)))
            )
        )
        assert (by_id.write.matched, by_id.write.succeeded, by_id.write.skipped) == (1, 0, 1)
    finally:
        holder.rollback()
        holder.close()
    assert ids_where(conn, "status = 'pending'") == set(ids[:3])


def test_discard_leaves_a_row_another_run_replayed_meanwhile(conn: Any, db_url: str) -> None:
    ids = insert_entries(conn, [entry() for _ in range(5)])
    # A replay has marked one row but not committed yet: discard skips it, and after the
    # replay commits the row is replayed, not discarded.
    holder = psycopg.connect(db_url)
    holder.execute("UPDATE dlq SET status = 'replayed' WHERE dlq_id = %s", (ids[0],))
    try:
        result = run_with_guard(
            lambda: discard(
                make_settings(db_url), DiscardRequest(EntryFilter(consumers=("orders",)))
            )
        )
    finally:
        holder.commit()
        holder.close()
    assert (result.write.succeeded, result.write.skipped) == (4, 1)
    assert ids_where(conn, "status = 'replayed'") == {ids[0]}


def test_all_inserts_land_while_purge_runs(conn: Any, db_url: str) -> None:
    old = NOW - timedelta(days=60)
    insert_entries(conn, [entry(status="discarded", failed_at=old) for _ in range(3000)])
    stop = threading.Event()
    threaded: list[uuid.UUID] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as w:
                while not stop.is_set() or len(threaded) < 20:
                    threaded.extend(insert_entries(w, [entry(failed_at=datetime.now(UTC))]))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    interleaved = InsertOnEachBatch(db_url)
    try:
        request = PurgeRequest(EntryFilter(), timedelta(days=30), "30d", batch_size=50)
        result = purge(make_settings(db_url), request, listener=interleaved)
    finally:
        stop.set()
        thread.join(60)
        interleaved.writer.close()
    assert not errors
    assert result.write.succeeded == 3000
    assert len(interleaved.inserted) == 3 * result.batches
    assert all_ids(conn) == set(threaded) | set(interleaved.inserted)


def test_stop_between_batches_counts_the_rest_as_skipped(conn: Any, db_url: str) -> None:
    old = NOW - timedelta(days=60)
    insert_entries(
        conn, [entry(status=s, failed_at=old) for s in ("replayed", "discarded") for _ in range(25)]
    )
    stop = threading.Event()
    request = PurgeRequest(EntryFilter(), timedelta(days=30), "30d", batch_size=10)
    result = purge(make_settings(db_url), request, listener=StopAfter(2, stop), stop=stop)
    assert result.write.outcome == "interrupted"
    assert (result.write.matched, result.write.succeeded, result.write.skipped) == (50, 20, 30)
    assert len(all_ids(conn)) == 30
    [record] = list_actions(conn, action="purge")
    assert record.outcome == "interrupted"
    assert record.counts["skipped"] == 30


@pytest.mark.parametrize(
    "entry_filter",
    [
        pytest.param(EntryFilter(statuses=(Status.REPLAYED, Status.DISCARDED)), id="purge"),
        pytest.param(EntryFilter(statuses=(Status.PENDING,)), id="one-status"),
        pytest.param(EntryFilter(statuses=(Status.PENDING,), consumers=("orders",)), id="discard"),
        pytest.param(EntryFilter(statuses=tuple(Status), error="timeout"), id="error"),
    ],
)
def test_batch_walks_an_index_from_the_keyset(conn: Any, entry_filter: EntryFilter) -> None:
    """EXPLAIN: a batch's index scan starts at the keyset (no seq scan), so rows earlier
    batches deleted or skipped are never read again. (When what is left is small the planner
    may fetch all of it and sort; when it is large it walks an index in order.)"""
    old = NOW - timedelta(days=90)
    # Inserted in failed_at order, as the services write them.
    rows = [
        entry(
            consumer=CONSUMERS[i % 3],
            status=("pending", "replayed", "discarded")[i % 3],
            failed_at=old + timedelta(minutes=i),
            error_message=ERRORS[i % 3],
        )
        for i in range(30_000)
    ]
    insert_entries(conn, rows)
    conn.execute("ANALYZE dlq")
    selection = dataclasses.replace(entry_filter, until=NOW - timedelta(days=30))
    after = Keyset(old + timedelta(days=10), uuid.UUID(int=0))
    query, params = batch_statement(selection, after, DELETE)
    with conn.transaction(force_rollback=True):
        fence_plans(conn)
        plan_rows = conn.execute(
            b"EXPLAIN " + query.as_bytes(conn), {**params, "walk_limit": 5000}
        ).fetchall()
    plan = "\n".join(r["QUERY PLAN"] for r in plan_rows)
    batch_plan = plan.split("CTE claimed")[0]
    assert "Seq Scan" not in batch_plan, plan
    starts = [line for line in batch_plan.splitlines() if "Index Cond" in line]
    assert any("ROW(failed_at, dlq_id) > ROW(" in c or "failed_at >= " in c for c in starts), plan
    assert plan.count("Tid Scan") == 2, plan


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(list(Status)), st.integers(0, 4), st.sampled_from(CONSUMERS)),
        max_size=40,
    ),
    batch_size=st.integers(1, 6),
    consumers=st.lists(st.sampled_from(CONSUMERS), max_size=2, unique=True),
)
def test_purge_walk_with_ties_and_any_batch_size(
    conn: Any,
    db_url: str,
    rows: list[tuple[Status, int, str]],
    batch_size: int,
    consumers: list[str],
) -> None:
    conn.execute("TRUNCATE dlq CASCADE")
    # failed_at drawn from five instants: many ties at every batch boundary.
    insert_entries(
        conn,
        [
            entry(status=s.value, consumer=c, failed_at=TIE_AT - timedelta(days=k))
            for s, k, c in rows
        ],
    )
    expected = {
        r["dlq_id"]
        for r in conn.execute("SELECT dlq_id, status, consumer FROM dlq")
        if r["status"] != "pending" and (not consumers or r["consumer"] in consumers)
    }
    request = PurgeRequest(
        EntryFilter(consumers=tuple(consumers)), timedelta(days=30), "30d", batch_size=batch_size
    )
    result = purge(make_settings(db_url), request)
    assert result.write.succeeded == len(expected)
    remaining = all_ids(conn)
    assert not remaining & expected
    assert len(remaining) == len(rows) - len(expected)


def test_purge_deletes_the_attempts_of_the_entries_it_deletes(conn: Any, db_url: str) -> None:
    old, kept = insert_entries(
        conn,
        [
            entry(status="replayed", retry_count=2, failed_at=NOW - timedelta(days=50)),
            entry(status="replayed", retry_count=1, failed_at=NOW - timedelta(days=5)),
        ],
    )
    for dlq_id, offset in ((old, 1), (old, 2), (kept, 3)):
        conn.execute(
            "INSERT INTO dlq_attempts (dlq_id, attempt, error_message, source_topic,"
            " source_partition, source_offset) VALUES (%s, 1, 'boom', 'orders', 0, %s)",
            (dlq_id, offset),
        )
    purge(make_settings(db_url), PurgeRequest(EntryFilter(), timedelta(days=30), "30d"))
    assert all_ids(conn) == {kept}
    left = conn.execute("SELECT dlq_id, source_offset FROM dlq_attempts").fetchall()
    assert [(r["dlq_id"], r["source_offset"]) for r in left] == [(kept, 3)]
