"""``history``: the audit log of write commands as a table."""

from __future__ import annotations

from collections.abc import Sequence

from dlqctl.cli.output.console import key_value_table, note, out, utc_now, when
from dlqctl.core.models import AuditRecord


def render_history(records: Sequence[AuditRecord]) -> None:
    """One row per recorded run, newest first."""
    if not records:
        note("no recorded actions yet")
        return
    now = utc_now()
    rows = (
        (
            when(r.at, now),
            r.actor,
            r.action,
            r.outcome,
            ", ".join(f"{k} {v}" for k, v in r.counts.items() if v) or "nothing matched",
            r.reason or "",
        )
        for r in records
    )
    out().print(
        key_value_table(None, rows, ("at (UTC)", "actor", "action", "outcome", "counts", "reason"))
    )
