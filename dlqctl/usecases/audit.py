"""Audit records for write commands, and reading the audit log back (`dlqctl history`)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from dlqctl.core.errors import DlqctlError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import AuditRecord, WriteResult
from dlqctl.core.settings import Settings
from dlqctl.db.audit import list_actions, record_action
from dlqctl.db.connection import Connection, session, translate_errors, usable


def audit_record(
    settings: Settings,
    result: WriteResult,
    entry_filter: EntryFilter,
    *,
    reason: str | None = None,
    ids: Sequence[UUID] | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """The audit row for one run of a write command."""
    scrub = settings.scrubber()
    # Details carry error texts, in which libpq and librdkafka may echo a secret.
    extra = {key: _scrubbed(value, scrub) for key, value in (details or {}).items()}
    if result.topics is not None:
        extra.setdefault("topics", dict(result.topics))
    return AuditRecord(
        actor=settings.actor,
        host=socket.gethostname(),
        action=result.action,
        filter=entry_filter.to_json(),
        counts=result.counts(),
        outcome=result.outcome,
        reason=reason,
        ids=tuple(ids) if ids else None,
        details=extra,
    )


def _scrubbed(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, scrub) for v in value]
    return value


def history(settings: Settings, *, action: str | None = None, limit: int = 50) -> list[AuditRecord]:
    """The audit log, newest first."""
    with session(settings.dsn) as conn:
        return list_actions(conn, action=action, limit=limit)


def record_run(settings: Settings, record: AuditRecord, conn: Connection | None = None) -> bool:
    """Write a run's audit row: on the run's own connection when it is still usable, else
    on a fresh one (a failed run's connection may be gone). Whether the row was written.

    A missing audit row never changes a run's outcome: the caller says so in its summary.
    """
    if conn is not None and usable(conn):
        try:
            with translate_errors():
                conn.rollback()  # the run has settled; nothing of it is left uncommitted on purpose
                record_action(conn, record)
                conn.commit()
            return True
        except DlqctlError:
            pass  # e.g. the connection broke just now; try a fresh one
    try:
        with session(settings.dsn, application_name="dlqctl audit") as fresh:
            record_action(fresh, record)
            fresh.commit()
    except DlqctlError:
        return False
    return True
