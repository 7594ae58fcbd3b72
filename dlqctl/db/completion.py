"""Values for shell completion: consumer names that start with what was typed.

A loose index scan on ``idx_dlq_consumer`` (or any index leading with ``consumer``): one
index probe per distinct consumer from the prefix on, never a scan of the table.
"""

from __future__ import annotations

from dlqctl.db.connection import Connection

MAX_NAMES = 200

_CONSUMERS_FROM = """
WITH RECURSIVE consumers AS (
    (SELECT consumer FROM dlq WHERE consumer >= %(prefix)s ORDER BY consumer LIMIT 1)
    UNION ALL
    SELECT (SELECT d.consumer FROM dlq d WHERE d.consumer > c.consumer
            ORDER BY d.consumer LIMIT 1)
    FROM consumers c WHERE c.consumer IS NOT NULL
)
SELECT consumer FROM consumers
WHERE consumer IS NOT NULL AND left(consumer, length(%(prefix)s)) = %(prefix)s
LIMIT %(limit)s
"""


def consumers_starting_with(conn: Connection, prefix: str) -> list[str]:
    """Distinct consumer names that start with ``prefix``, in order (at most MAX_NAMES)."""
    rows = conn.execute(_CONSUMERS_FROM, {"prefix": prefix, "limit": MAX_NAMES}).fetchall()
    return [r["consumer"] for r in rows]
