"""Shared selection queries: id resolution, counts, eligibility of explicit ids, and what an
unmigrated database answers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dlqctl.core.errors import AmbiguousIdError, NotFoundError, SchemaMissing
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import parse_id
from dlqctl.core.models import Status
from dlqctl.db.connection import session
from dlqctl.db.entries import count_matches, resolve_ids, split_explicit_ids
from tests.factories import entry, insert_entries


def test_resolve_full_ids_and_prefixes(conn: Any) -> None:
    a = uuid.UUID("0193a1b2-c3d4-7e5f-8a9b-000000000001")
    b = uuid.UUID("0193a1b2-c3d4-7e5f-8a9b-000000000002")
    c = uuid.UUID("7f000000-0000-4000-8000-000000000000")
    insert_entries(conn, [entry(dlq_id=a), entry(dlq_id=b), entry(dlq_id=c)])
    assert resolve_ids(conn, [parse_id(str(a))]) == [a]
    assert resolve_ids(conn, [parse_id("7F000000")]) == [c]
    assert resolve_ids(conn, [parse_id("7f00-0000"), parse_id(str(c))]) == [c]
    with pytest.raises(AmbiguousIdError) as ambiguous:
        resolve_ids(conn, [parse_id("0193a1b2c3d4")])
    assert {str(a), str(b)} <= set(ambiguous.value.candidates)
    assert ambiguous.value.exit_code == 2
    with pytest.raises(NotFoundError) as missing:
        resolve_ids(conn, [parse_id("ffffffff")])
    assert missing.value.exit_code == 3


def test_count_matches_by_consumer_and_status(conn: Any) -> None:
    insert_entries(
        conn,
        [
            entry(consumer="a"),
            entry(consumer="a"),
            entry(consumer="a", status="replayed"),
            entry(consumer="b", error_message="100% _done_ \\o/"),
        ],
    )
    counts = count_matches(conn, EntryFilter())
    assert [(c.consumer, c.status, c.count) for c in counts] == [
        ("a", Status.PENDING, 2),
        ("a", Status.REPLAYED, 1),
        ("b", Status.PENDING, 1),
    ]
    literal = count_matches(conn, EntryFilter(error="% _DONE_ \\"))
    assert [(c.consumer, c.count) for c in literal] == [("b", 1)]
    assert count_matches(conn, EntryFilter(error="%")) == literal
    assert count_matches(conn, EntryFilter(error="_d_")) == []


def test_split_explicit_ids(conn: Any) -> None:
    pending, replayed, other = insert_entries(
        conn,
        [entry(consumer="a"), entry(consumer="a", status="replayed"), entry(consumer="b")],
    )
    eligible, ineligible = split_explicit_ids(
        conn, [pending, replayed, other], EntryFilter(consumers=("a",)), [Status.PENDING]
    )
    assert eligible == [pending]
    assert ineligible == [replayed, other]


def test_schema_missing_is_explained(empty_db_url: str) -> None:
    with pytest.raises(SchemaMissing, match="dlqctl migrate"), session(empty_db_url) as conn:
        count_matches(conn, EntryFilter())
