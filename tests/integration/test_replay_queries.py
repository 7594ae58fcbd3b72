"""Replay's queries on the real PostgreSQL: plans (EXPLAIN), claims, guards, compact JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import Status
from dlqctl.core.replay import compact_jsonb_text
from dlqctl.db import replay_queries as q
from dlqctl.db.filters import fence_plans
from tests.factories import BASE_TIME, entry, insert_entries

BATCH = 100


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def _explain(conn: Any, query: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.transaction(force_rollback=True):
        fence_plans(conn)
        text = query.as_string(conn) if hasattr(query, "as_string") else query
        row = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {text}", params).fetchone()
    return _plan_nodes(row["QUERY PLAN"][0]["Plan"])


@pytest.fixture
def big_table(conn: Any) -> Any:
    """20,000 entries of 4 consumers and all statuses, analysed (the planner's real choice)."""
    consumers = ["orders", "billing", "search", "legacy"]
    statuses = ["pending", "pending", "replayed", "discarded"]
    insert_entries(
        conn,
        [
            entry(
                consumer=consumers[i % 4],
                status=statuses[(i // 4) % 4],
                failed_at=BASE_TIME + timedelta(seconds=i * 7 % 20000),
            )
            for i in range(20000)
        ],
    )
    conn.execute("ANALYZE dlq")
    return conn


@pytest.mark.parametrize(
    ("statuses", "consumers", "error", "index", "walks"),
    [
        ((), (), None, "idx_dlq_status_failed", 1),
        ((), (), "bad order", "idx_dlq_status_failed", 1),
        ((Status.DISCARDED,), ("orders",), None, "idx_dlq_consumer_status_failed", 1),
        ((Status.PENDING, Status.DISCARDED), (), None, "idx_dlq_status_failed", 2),
        ((), ("orders", "billing", "search"), None, "idx_dlq_consumer_status_failed", 3),
        (
            (Status.PENDING, Status.REPLAYED),
            ("orders", "billing"),
            None,
            "idx_dlq_consumer_status_failed",
            4,
        ),
    ],
)
def test_claim_walks_an_index_and_sorts_no_more_than_a_batch_per_walk(
    big_table: Any,
    statuses: tuple[Status, ...],
    consumers: tuple[str, ...],
    error: str | None,
    index: str,
    walks: int,
) -> None:
    selection = q.Selection(
        EntryFilter(statuses=statuses, consumers=consumers, error=error),
        started_at=datetime.now(UTC),
    )
    query, params = q.claim_sql(selection)
    middle = BASE_TIME + timedelta(seconds=9000)
    params.update(walk_at=middle, walk_id=q.START_ID, walk_limit=BATCH)

    nodes = _explain(big_table, query, params)

    scans = [n for n in nodes if n.get("Relation Name") == "dlq"]
    assert scans, nodes
    assert {n["Node Type"] for n in scans} <= {"Index Scan", "Tid Scan"}, scans
    assert {n.get("Index Name") for n in scans if n["Node Type"] == "Index Scan"} == {index}
    for node in nodes:
        if node["Node Type"] in ("Sort", "Index Scan"):
            # per walk: at most one batch read from the index; sorts see at most every walk's batch
            assert node["Actual Rows"] <= BATCH * (walks if node["Node Type"] == "Sort" else 1)
    locked = [n for n in nodes if n["Node Type"] == "LockRows"]
    assert locked and locked[0]["Actual Rows"] == BATCH


def test_claim_moves_forward_from_the_cursor_and_skips_locked_rows(conn: Any, db_url: str) -> None:
    rows = [entry(failed_at=BASE_TIME + timedelta(seconds=i)) for i in range(6)]
    ids = insert_entries(conn, rows)
    selection = q.Selection(EntryFilter(statuses=(Status.PENDING, Status.DISCARDED)))
    query, params = q.claim_sql(selection)
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM dlq WHERE dlq_id = %s FOR UPDATE", (ids[1],))
        with psycopg.connect(db_url) as claimer:
            first = q.claim_batch(claimer, query, params, (q.START_AT, q.START_ID), 3)
            # The held row is skipped; the batch still ends after the third row walked.
            assert [r[q.ID] for r in first.rows if r[q.CLAIMED]] == [str(ids[0]), str(ids[2])]
            assert first.cursor == (rows[2]["failed_at"], str(ids[2]))
            second = q.claim_batch(claimer, query, params, first.cursor, 3)
            assert [r[q.ID] for r in second.rows if r[q.CLAIMED]] == [str(i) for i in ids[3:]]
            third = q.claim_batch(claimer, query, params, second.cursor, 3)
            assert third.rows == []


def test_entries_changed_after_the_run_started_are_not_claimed(conn: Any, db_url: str) -> None:
    ids = insert_entries(conn, [entry(status="replayed") for _ in range(3)])
    started = datetime.now(UTC)
    update = "UPDATE dlq SET status_changed_at = %s WHERE dlq_id = %s"
    conn.execute(update, (started - timedelta(hours=1), ids[0]))
    conn.execute(update, (started, ids[1]))
    selection = q.Selection(EntryFilter(statuses=(Status.REPLAYED,)), started_at=started)
    query, params = q.claim_sql(selection)
    with psycopg.connect(db_url) as claimer:
        batch = q.claim_batch(claimer, query, params, (q.START_AT, q.START_ID), 10)
    assert sorted(r[q.ID] for r in batch.rows) == sorted(str(i) for i in (ids[0], ids[2]))


def test_plan_counts_and_oversize_candidates(conn: Any) -> None:
    insert_entries(
        conn,
        [
            entry(consumer="a", source_topic="t1"),
            entry(consumer="a"),
            entry(consumer="b", event_payload={"x": "y" * 3000}),
            entry(consumer="b", status="replayed"),
        ],
    )
    selection = q.Selection(EntryFilter(statuses=(Status.PENDING,)))
    groups = q.plan_groups(conn, selection, limit=None, max_bytes=2000)
    assert [(g.consumer, g.status, g.source_topic, g.count, g.maybe_oversize) for g in groups] == [
        ("a", Status.PENDING, "t1", 1, 0),
        ("a", Status.PENDING, None, 1, 0),
        ("b", Status.PENDING, None, 1, 1),
    ]
    limited = q.plan_groups(conn, selection, limit=1, max_bytes=2000)
    assert sum(g.count for g in limited) == 1
    (big,) = q.oversize_candidates(conn, selection, limit=None, max_bytes=2000, at_most=10)
    assert big[q.CONSUMER] == "b" and len(big[q.PAYLOAD]) > 3000


# jsonb keeps the number text (1.50, huge values), escapes, and non-ASCII characters.
RAW_JSON = (
    '{"n": 1.50, "big": 123456789012345678901234567890.000001, "neg": -0.0,'
    ' "s": "a, b: c", "q": "say \\"hi\\", ok: \\\\", "u": "é\\u0001\\t", "e": "",'
    ' "arr": [1, {"k": [true, false, null]}, [], {}], "": " "}'
)


def test_compact_json_of_real_jsonb_text(conn: Any) -> None:
    text = conn.execute("SELECT %s::jsonb::text AS t", (RAW_JSON,)).fetchone()["t"]
    compact = compact_jsonb_text(text)
    assert compact == (
        '{"":" ","e":"","n":1.50,"q":"say \\"hi\\", ok: \\\\","s":"a, b: c","u":"é\\u0001\\t",'
        '"arr":[1,{"k":[true,false,null]},[],{}],"big":123456789012345678901234567890.000001,'
        '"neg":0.0}'
    )
    assert json.loads(compact, parse_float=Decimal) == json.loads(RAW_JSON, parse_float=Decimal)


jsonb_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | jsonb_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(jsonb_text, children, max_size=4)
    ),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values)
def test_compact_json_of_jsonb_is_json_without_whitespace(conn: Any, value: Any) -> None:
    text = conn.execute("SELECT %s::jsonb::text AS t", (Jsonb(value),)).fetchone()["t"]
    compact = compact_jsonb_text(text)
    reparsed = json.loads(compact)
    assert reparsed == value
    assert compact == json.dumps(reparsed, ensure_ascii=False, separators=(",", ":"))


def _scans(nodes: list[dict[str, Any]], relation: str) -> list[dict[str, Any]]:
    return [n for n in nodes if n.get("Relation Name") == relation]


def test_plan_claims_and_canary_checks_read_their_indexes(big_table: Any) -> None:
    """Plans claim by primary key; the canary's checks read dlq by event_id and dlq_attempts
    by dlq_id: no sequential scan of either table."""
    rows = big_table.execute("SELECT dlq_id, event_id FROM dlq ORDER BY failed_at LIMIT 50")
    sample = rows.fetchall()
    ids = [r["dlq_id"] for r in sample]
    big_table.execute(
        "INSERT INTO dlq_attempts (dlq_id, attempt, error_message, source_topic,"
        " source_partition, source_offset)"
        " SELECT dlq_id, 1, 'again', 't', 0, n FROM dlq, generate_series(1, 2) AS n"
    )
    big_table.execute("ANALYZE dlq_attempts")
    columns = q._PLAN_COLUMNS.format(columns=q._MESSAGE_COLUMNS.format(t="dlq"), t="dlq")
    for template in (q._CLAIM_BY_IDS, q._ROWS_BY_IDS):
        query = psycopg.sql.SQL(template).format(columns=psycopg.sql.SQL(columns))
        (scan,) = _scans(_explain(big_table, query, {"ids": ids}), "dlq")
        assert scan["Node Type"] in ("Index Scan", "Bitmap Heap Scan"), scan
        assert scan["Actual Rows"] == 50
    nodes = _explain(big_table, q._SAME_EVENTS, {"event_ids": [r["event_id"] for r in sample]})
    assert {n["Node Type"] for n in _scans(nodes, "dlq")} <= {"Index Scan", "Bitmap Heap Scan"}
    assert any(n.get("Index Name") == "idx_dlq_event_id" for n in nodes), nodes
    nodes = _explain(big_table, q._ATTEMPTS, {"ids": ids})
    assert {n["Node Type"] for n in _scans(nodes, "dlq_attempts")} <= {
        "Index Scan",
        "Index Only Scan",
        "Bitmap Heap Scan",
    }
    assert any(n.get("Index Name") == "uq_dlq_attempts_source_message" for n in nodes), nodes


def test_plan_rows_walk_the_selection_without_locks(conn: Any, db_url: str) -> None:
    ids = insert_entries(
        conn, [entry(failed_at=BASE_TIME + timedelta(seconds=i)) for i in range(5)]
    )
    selection = q.Selection(EntryFilter(statuses=(Status.PENDING, Status.DISCARDED)))
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM dlq WHERE dlq_id = %s FOR UPDATE", (ids[1],))
        with psycopg.connect(db_url) as reader:
            first = q.plan_rows(reader, selection, (q.START_AT, q.START_ID), 3)
            rest = q.plan_rows(reader, selection, (first[-1][q.FAILED_AT], first[-1][q.ID]), 3)
    assert [r[q.ID] for r in first + rest] == [str(i) for i in ids]  # the held one too
    assert {r[q.STATUS] for r in first + rest} == {"pending"}
