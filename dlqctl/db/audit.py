"""The audit log: one ``dlq_actions`` row per run of a write command."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from dlqctl.core.models import AuditRecord
from dlqctl.db.connection import Connection

_INSERT_ACTION = """
INSERT INTO dlq_actions (actor, host, action, filter, ids, counts, outcome, reason, details)
VALUES (%(actor)s, %(host)s, %(action)s, %(filter)s, %(ids)s, %(counts)s, %(outcome)s,
        %(reason)s, %(details)s)
RETURNING at
"""

_SELECT_ACTIONS = """
SELECT at, actor, host, action, filter, ids, counts, outcome, reason, details
FROM dlq_actions
WHERE (%(action)s::text IS NULL OR action = %(action)s)
ORDER BY at DESC, id DESC
LIMIT %(limit)s
"""


def record_action(conn: Connection, record: AuditRecord) -> None:
    """Insert the audit row (in the caller's transaction, if one is open)."""
    conn.execute(
        _INSERT_ACTION,
        {
            "actor": record.actor,
            "host": record.host,
            "action": record.action,
            "filter": Jsonb(record.filter),
            "ids": list(record.ids) if record.ids else None,
            "counts": Jsonb(record.counts),
            "outcome": record.outcome,
            "reason": record.reason,
            "details": Jsonb(record.details),
        },
    )


def list_actions(
    conn: Connection, *, action: str | None = None, limit: int = 50
) -> list[AuditRecord]:
    """Audit rows, newest first."""
    rows: list[dict[str, Any]] = conn.execute(
        _SELECT_ACTIONS, {"action": action, "limit": limit}
    ).fetchall()
    return [
        AuditRecord(
            at=r["at"],
            actor=r["actor"],
            host=r["host"] or "",
            action=r["action"],
            filter=r["filter"],
            counts=r["counts"],
            outcome=r["outcome"],
            reason=r["reason"],
            ids=tuple(r["ids"]) if r["ids"] else None,
            details=r["details"] or {},
        )
        for r in rows
    ]
