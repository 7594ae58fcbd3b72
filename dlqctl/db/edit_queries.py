"""SQL of ``dlqctl edit``: read one entry, lock it, write its edit columns.

Everything goes through the primary key (one row). The edit transaction locks the row with
``FOR UPDATE`` — waiting, not ``SKIP LOCKED``: a replay batch that holds it commits within
its delivery timeout — and re-reads it under the lock, so an edit racing a replay either
lands before replay claims the entry or sees it replayed and is refused (see docs/edit.md,
"Concurrency"). A lock timeout bounds the wait.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from dlqctl.core.edit import EditChange, EditTarget, without_dlq_headers
from dlqctl.core.models import Header, Status
from dlqctl.core.replay import message_value
from dlqctl.db.connection import Connection

# Longer than a replay batch normally holds its rows, short enough to fail clearly when a
# stuck transaction holds the row.
LOCK_TIMEOUT = "15s"

_READ = """
SELECT dlq_id, consumer, status, event_headers, event_raw,
       CASE WHEN event_raw IS NULL THEN event_payload::text END AS payload,
       edited_raw, edited_headers, edited_at, edited_by
FROM dlq
WHERE dlq_id = %(dlq_id)s
{lock}
"""

_SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %(timeout)s, true)"

_WRITE_EDIT = """
UPDATE dlq
SET edited_raw = %(edited_raw)s,
    edited_headers = %(edited_headers)s,
    edited_at = CASE WHEN %(edited)s THEN now() END,
    edited_by = CASE WHEN %(edited)s THEN %(actor)s::text END
WHERE dlq_id = %(dlq_id)s
RETURNING edited_at
"""


def read_target(conn: Connection, dlq_id: UUID, *, lock: bool) -> EditTarget | None:
    """The entry as an edit sees it (``lock``: locked for the rest of the transaction, after
    waiting for whoever holds it), or None when it no longer exists."""
    if lock:
        conn.execute(_SET_LOCK_TIMEOUT, {"timeout": LOCK_TIMEOUT})
    query = sql.SQL(_READ).format(lock=sql.SQL("FOR UPDATE" if lock else ""))
    row = conn.execute(query, {"dlq_id": dlq_id}).fetchone()
    if row is None:
        return None
    original = message_value(_bytes(row["event_raw"]), row["payload"])
    return EditTarget(
        dlq_id=row["dlq_id"],
        consumer=row["consumer"],
        status=Status(row["status"]),
        original_value=original.encode("utf-8") if isinstance(original, str) else original,
        original_headers=without_dlq_headers(_headers(row["event_headers"])),
        edited_raw=_bytes(row["edited_raw"]),
        edited_headers=_headers(row["edited_headers"]),
        edited_at=row["edited_at"],
        edited_by=row["edited_by"],
    )


def write_edit(conn: Connection, dlq_id: UUID, change: EditChange, actor: str) -> datetime | None:
    """Store the edit columns (all NULL when ``change`` is no edit); returns edited_at."""
    headers = change.edited_headers
    row = conn.execute(
        _WRITE_EDIT,
        {
            "dlq_id": dlq_id,
            "edited_raw": change.edited_raw,
            "edited_headers": None if headers is None else Jsonb([h.to_stored() for h in headers]),
            "edited": change.is_edited,
            "actor": actor,
        },
    ).fetchone()
    assert row is not None  # the row is locked by this transaction
    edited_at: datetime | None = row["edited_at"]
    return edited_at


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _headers(stored: Any) -> tuple[Header, ...] | None:
    return None if stored is None else tuple(Header.from_stored(p) for p in stored)
