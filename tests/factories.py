"""What the tests build: rows of the dlq table (filled the way its writers fill it) and the
settings a test runs dlqctl with; and the audit log read back."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dlqctl.core.settings import Settings

COLUMNS = (
    "dlq_id",
    "consumer",
    "event_id",
    "event_payload",
    "error_message",
    "failed_at",
    "retry_count",
    "status",
    "source_topic",
    "source_partition",
    "source_offset",
    "event_key",
    "event_headers",
    "event_raw",
    "error_fingerprint",
)

# Who acts in the audit log of every test run, and how long replay waits for the test broker.
ACTOR = "oncall-test"
DELIVERY_TIMEOUT = 10
# tansu holds a group's first JoinGroup for session.timeout.ms / 2.
TEST_CONSUMER_CONFIG = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}

_sequence = itertools.count()
BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def entry(**overrides: Any) -> dict[str, Any]:
    """One row; every column can be overridden (dlq_id defaults to a fresh uuid4)."""
    n = next(_sequence)
    event_id = overrides.get("event_id", uuid.uuid4())
    row: dict[str, Any] = {
        "dlq_id": uuid.uuid4(),
        "consumer": "orders",
        "event_id": event_id,
        "event_payload": {"event_id": str(event_id), "n": n},
        "error_message": f"ValueError: bad order {n}",
        "failed_at": BASE_TIME + timedelta(seconds=n),
        "retry_count": 0,
        "status": "pending",
        "source_topic": None,
        "source_partition": None,
        "source_offset": None,
        "event_key": None,
        "event_headers": None,
        "event_raw": None,
        "error_fingerprint": None,
    }
    unknown = set(overrides) - set(row)
    if unknown:
        raise TypeError(f"unknown columns {unknown}")
    row.update(overrides)
    return row


def insert_entries(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> list[uuid.UUID]:
    """Insert rows with COPY; returns their ids in the given order."""
    with conn.cursor() as cur, cur.copy(f"COPY dlq ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            values = [row[c] for c in COLUMNS]
            for i, column in enumerate(COLUMNS):
                if column in ("event_payload", "event_headers") and values[i] is not None:
                    values[i] = Jsonb(values[i])
            copy.write_row(values)
    if not conn.autocommit:
        conn.commit()
    return [row["dlq_id"] for row in rows]


def insert_many(conn: psycopg.Connection[Any], count: int, **overrides: Any) -> list[uuid.UUID]:
    return insert_entries(conn, [entry(**overrides) for _ in range(count)])


def audit_rows(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every dlq_actions row, oldest first (``conn`` returns rows as dicts)."""
    return conn.execute("SELECT * FROM dlq_actions ORDER BY id").fetchall()


def make_settings(db_url: str, bootstrap: str | None = None, **overrides: Any) -> Settings:
    """Settings for a test: its database and broker, the test actor, a short delivery timeout,
    and for consumers quick retries, quick commits and short group timeouts.

    ``kafka_consumer_config`` overrides are added to the test consumer config, not replacing it.
    """
    consumer_config = {**TEST_CONSUMER_CONFIG, **overrides.pop("kafka_consumer_config", {})}
    values: dict[str, Any] = {
        "database_url": db_url,
        "kafka_bootstrap_servers": bootstrap,
        "actor": ACTOR,
        "kafka_delivery_timeout": DELIVERY_TIMEOUT,
        "kafka_consumer_config": consumer_config,
        "consumer_retry_backoff": (0.0, 0.05),
        "consumer_commit_interval": 0.2,
        **overrides,
    }
    return Settings(**values)
