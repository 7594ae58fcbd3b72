"""Shared pieces of the replay tests: reading rows, audit records and messages back."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.kafka_helpers import Message, read_topic


def rows_by_id(conn: Any) -> dict[uuid.UUID, dict[str, Any]]:
    """Every entry's bookkeeping columns."""
    return {
        r["dlq_id"]: r
        for r in conn.execute(
            "SELECT dlq_id, status, retry_count, status_changed_at, status_changed_by FROM dlq"
        )
    }


def replayed_ids(conn: Any) -> set[uuid.UUID]:
    return {r["dlq_id"] for r in conn.execute("SELECT dlq_id FROM dlq WHERE status = 'replayed'")}


def header(message: Message, name: str) -> str | None:
    values = [v for k, v in message.headers if k == name]
    assert len(values) == 1, message.headers
    return None if values[0] is None else values[0].decode()


def dlq_ids_on(bootstrap: str, topic: str, expected: int) -> list[uuid.UUID]:
    """The dlq-id header of every message on the topic (duplicates kept)."""
    return [uuid.UUID(header(m, "dlq-id")) for m in read_topic(bootstrap, topic, expected)]


def parse_json(stdout: str) -> dict[str, Any]:
    value = json.loads(stdout)
    assert isinstance(value, dict)
    return value
