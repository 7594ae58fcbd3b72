"""Replay plans, the pure part: the checksum, the file's text, parsing, what counts as a change."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from dlqctl.core.errors import UsageError
from dlqctl.core.models import Status
from dlqctl.core.plans import (
    PlanEntry,
    PlanFile,
    headers_sha256,
    parse_plan,
    value_sha256,
)

IDS = [uuid.UUID(int=n) for n in range(1, 4)]


def _plan() -> PlanFile:
    return PlanFile(
        created_at=datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
        actor="alice",
        host="ops-1",
        filter={"consumer": ["orders"], "error": "timed out"},
        entries=tuple(
            PlanEntry(
                dlq_id=i,
                consumer="orders",
                topic="orders.v1",
                status=Status.PENDING,
                retry_count=n,
                value_sha256=value_sha256(f"value {n}"),
                headers_sha256=headers_sha256([("trace", b"t")]),
            )
            for n, i in enumerate(IDS)
        ),
    )


def test_the_file_reads_back_and_its_checksum_is_over_the_canonical_body() -> None:
    plan = _plan()
    text = plan.render()
    data = json.loads(text)
    body = {k: v for k, v in data.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data["checksum"] == hashlib.sha256(canonical.encode()).hexdigest() == plan.checksum
    assert parse_plan(text, "p.json") == plan
    assert len(text.splitlines()) == 10 + len(IDS)  # one entry per line, for a diff
    assert data["created_at"] == "2026-11-29T10:00:00Z"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('"retry_count": 1', '"retry_count": 2'), "was changed after it"),
        (lambda t: t.replace("alice", "mallory"), "was changed after it"),
        (lambda t: t[:-3], "is not valid JSON"),
        (lambda t: "[1, 2]", "malformed: not a JSON object"),
    ],
)
def test_a_changed_or_broken_plan_is_refused(edit: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_plan(edit(_plan().render()), "p.json")
    assert caught.value.exit_code == 2


def _resealed(mutate: Any) -> str:
    """A plan changed and given a matching checksum again (a hand-made file)."""
    data = _plan().to_json()
    del data["checksum"]
    mutate(data)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    data["checksum"] = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps(data)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "version 2 is not supported"),
        (lambda d: d.pop("actor"), "missing field 'actor'"),
        (lambda d: d["entries"][0].update(status="lost"), "'lost' is not a valid Status"),
        (lambda d: d["entries"][0].update(topic="a b"), "not a valid Kafka topic name"),
        (lambda d: d["entries"][0].update(retry_count=-1), "retry_count is not a count"),
        (lambda d: d["entries"][0].update(value_sha256="abc"), "not a sha256 hex digest"),
        (lambda d: d["entries"].append(d["entries"][0]), "listed twice"),
        (lambda d: d.update(extra=1), "not in the form dlqctl writes"),
    ],
)
def test_a_malformed_plan_is_refused_even_with_a_matching_checksum(
    mutate: Any, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        parse_plan(_resealed(mutate), "p.json")


def test_changes_name_everything_that_changed() -> None:
    entry = _plan().entries[1]
    same = (Status.PENDING, 1, entry.value_sha256, entry.headers_sha256 or "")
    assert entry.changes(*same) is None
    assert entry.changes(Status.REPLAYED, 2, entry.value_sha256, same[3]) == (
        "changed since the plan was made: status pending → replayed, retry_count 1 → 2"
    )
    assert entry.changes(Status.PENDING, 1, value_sha256(b"other"), "x") == (
        "changed since the plan was made: value (edited?), headers (edited?)"
    )


def test_hashes_are_of_the_published_bytes() -> None:
    assert value_sha256(None) is None  # a tombstone
    assert (
        value_sha256("é") == hashlib.sha256("é".encode()).hexdigest() == value_sha256(b"\xc3\xa9")
    )
    assert headers_sha256([("a", b"1")]) != headers_sha256([("a", b"1"), ("a", None)])
    assert headers_sha256([("a", "1")]) == headers_sha256([("a", b"1")])


def test_the_summary_shows_checksum_prefix_author_age_and_size() -> None:
    plan = _plan()
    summary = plan.summary()
    now = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
    assert summary.describe(now) == (
        f"plan {plan.checksum[:12]} by alice on ops-1, made 2h ago (2026-11-29T10:00:00Z):"
        " 3 entries"
    )
