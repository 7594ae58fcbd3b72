"""Audit records for write commands, and reading the audit log back (`dlqctl history`)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import AuditRecord, WriteResult
from dlqctl.core.settings import Settings
from dlqctl.db.audit import list_actions
from dlqctl.db.connection import session


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
    extra = dict(details or {})
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


def history(settings: Settings, *, action: str | None = None, limit: int = 50) -> list[AuditRecord]:
    """The audit log, newest first."""
    with session(settings.dsn) as conn:
        return list_actions(conn, action=action, limit=limit)
