"""Where a replay run's batches come from, and the message each claimed row becomes.

``SelectionClaims`` walks the selection from a keyset cursor (db/replay_queries.py);
``PlanClaims`` (usecases/plans.py) takes the entries of a plan by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from dlqctl.core.replay import (
    Headers,
    message_headers,
    message_key,
    message_value,
    resolve_topic,
)
from dlqctl.db import replay_queries as q
from dlqctl.db.connection import Connection

Message = tuple[str, bytes | str, bytes | str | None, Headers]


def row_message(
    row: Sequence[Any], target: str, value: Any = None, *, known: bool = False
) -> Message:
    """(topic, key, value, headers) of the Kafka message for one claimed row (see
    docs/replay.md, "The message"); ``known``: ``value`` is the value, computed already."""
    return (
        target,
        message_key(row[q.EVENT_KEY], row[q.EVENT_ID]),
        value if known else message_value(row[q.EVENT_RAW], row[q.PAYLOAD], row[q.EDITED_RAW]),
        message_headers(
            row[q.EVENT_HEADERS],
            row[q.ID],
            row[q.CONSUMER],
            row[q.RETRY_COUNT] + 1,
            row[q.EDITED_HEADERS],
        ),
    )


class ClaimSource(Protocol):
    """Where a run's batches come from."""

    def claim(self, conn: Connection, want: int) -> list[tuple[Any, ...]] | None:
        """Lock up to ``want`` more entries in the open transaction; None when done."""

    def message(self, row: Sequence[Any]) -> Message | None:
        """The message a claimed row becomes (None: no target topic for it)."""


class SelectionClaims:
    """The selection's entries, walked from a keyset cursor (see db/replay_queries.py)."""

    def __init__(self, selection: q.Selection, topic: str | None, topic_map: dict[str, str]):
        self.query, self.params = q.claim_sql(selection)
        self.cursor: tuple[Any, str] = (q.START_AT, q.START_ID)
        self.override = topic
        self.topic_map = topic_map

    def claim(self, conn: Connection, want: int) -> list[tuple[Any, ...]] | None:
        batch = q.claim_batch(conn, self.query, self.params, self.cursor, want)
        if not batch.rows:
            return None
        self.cursor = batch.cursor
        return batch.rows

    def message(self, row: Sequence[Any]) -> Message | None:
        target = resolve_topic(self.override, row[q.SOURCE_TOPIC], row[q.CONSUMER], self.topic_map)
        return None if target is None else row_message(row, target)
