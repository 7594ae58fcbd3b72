"""A canary replay's wait and check (see docs/replay.md, "Canary").

The run sends the first N entries of its selection (``ReplayRun`` in usecases/replay.py),
then hands them to a :class:`CanaryWatch`: it waits — with a consumer group, until the group
has committed offsets past every canary message on the partitions the delivery reports
named, at most ``--canary-wait``; without one, ``--canary-wait`` — and then looks for
re-failures: a ``dlq_attempts`` row whose attempt number is the entry's retry_count after
this replay (the consumer linked the failure back), or a new entry of the same consumer and
event_id that was not there before the canary was sent (another writer stored it).
No timestamps of different clients are compared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from dlqctl.core.canary import (
    Canary,
    CanaryMessage,
    CanaryOutcome,
    CanaryReport,
    behind,
    describe_positions,
    refailed_ids,
    targets,
)
from dlqctl.core.errors import DlqctlError
from dlqctl.core.replay import ReplayPlan, list_ids
from dlqctl.core.runs import RunListener
from dlqctl.core.settings import Settings
from dlqctl.db import replay_queries as q
from dlqctl.db.connection import Connection

# How often the wait reads the group's offsets, and how often it says it still waits.
POLL_SECONDS = 0.25
PROGRESS_SECONDS = 15.0


class CanaryWatch:
    """The canary of one run: what was sent, the wait, the verdict."""

    def __init__(
        self,
        settings: Settings,
        canary: Canary,
        listener: RunListener[ReplayPlan],
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.canary = canary
        self.listener = listener
        self.stop = stop
        self.messages: list[CanaryMessage] = []
        self.known: set[UUID] = set()  # entries of the canary's events before it was sent
        self.lagging: dict[tuple[str, int], tuple[int, int]] = {}
        self.last_error: str | None = None

    @property
    def size(self) -> int:
        return len(self.messages)

    def before_send(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Remember which entries of these claimed rows' events exist before they are sent."""
        event_ids = [UUID(r[q.EVENT_ID]) for r in rows if r[q.CLAIMED]]
        if event_ids:
            self.known.update(dlq_id for dlq_id, _, _ in q.entries_of_events(conn, event_ids))

    def sent(self, message: CanaryMessage) -> None:
        self.messages.append(message)

    def wait(self) -> bool:
        """Wait as the canary asks; False when the group did not get past the canary in time
        or the wait was interrupted (the stop event)."""
        if not self.messages:
            return True
        if self.canary.group is None:
            self.listener.note(
                f"canary: {self.size} entries sent; waiting {self.canary.wait_label} (no"
                " --canary-group) before checking whether any failed again"
            )
            return not self.stop.wait(self.canary.wait.total_seconds())
        return self._wait_for_group(self.canary.group)

    def _wait_for_group(self, group: str) -> bool:
        from dlqctl.kafka.groups import GroupOffsets

        wanted = targets(self.messages)
        where = ", ".join(f"{t}[{p}] up to offset {o - 1}" for (t, p), o in sorted(wanted.items()))
        self.listener.note(
            f"canary: {self.size} entries sent ({where}); waiting up to"
            f" {self.canary.wait_label} for consumer group {group!r} to commit past them"
        )
        offsets = GroupOffsets(self.settings, group)
        started = time.monotonic()
        deadline = started + self.canary.wait.total_seconds()
        next_progress = started + PROGRESS_SECONDS
        self.lagging = {tp: (-1, o) for tp, o in wanted.items()}
        while True:
            try:
                self.lagging = behind(wanted, offsets.committed(wanted))
                self.last_error = None
            except DlqctlError as exc:
                self.last_error = exc.message
            if not self.lagging:
                self.listener.note(
                    f"canary: group {group!r} has processed the canary"
                    f" ({time.monotonic() - started:.1f}s); checking for re-failures"
                )
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            if now >= next_progress:
                next_progress = now + PROGRESS_SECONDS
                self.listener.note(
                    f"canary: still waiting for group {group!r}"
                    f" ({describe_positions(self.lagging)})"
                )
            if self.stop.wait(min(POLL_SECONDS, max(0.0, deadline - now))):
                return False

    def refailed(self, conn: Connection) -> list[UUID]:
        """The canary entries that failed again (a short read-only transaction)."""
        if not self.messages:
            return []
        ids = [m.dlq_id for m in self.messages]
        attempts = q.attempts_of(conn, ids)
        same = q.entries_of_events(conn, list({m.event_id for m in self.messages}))
        conn.rollback()
        return refailed_ids(self.messages, attempts, same, self.known)

    def report(self, refailed: list[UUID], processed: bool) -> CanaryReport:
        if refailed:
            outcome = CanaryOutcome.REFAILED
        elif processed:
            outcome = CanaryOutcome.PASSED
        else:
            outcome = CanaryOutcome.NOT_PROCESSED
        return CanaryReport(
            size=self.size, refailed=tuple(refailed), outcome=outcome, group=self.canary.group
        )

    def verdict_note(self, report: CanaryReport, rest: bool) -> str:
        """One line of progress saying how the canary ended and what happens next."""
        if report.outcome is CanaryOutcome.PASSED:
            return f"canary passed: none of the {report.size} entries failed again" + (
                "; replaying the rest" if rest else ""
            )
        if report.outcome is CanaryOutcome.REFAILED:
            return (
                f"canary: {len(report.refailed)} of {report.size} entries failed again"
                f" ({list_ids([str(i) for i in report.refailed])}); nothing more is sent"
            )
        return (
            f"canary: not processed in time ({self.not_processed_reason()}); nothing more is sent"
        )

    def not_processed_reason(self) -> str:
        group = self.canary.group
        if group is None:
            return f"the wait of {self.canary.wait_label} was cut short"
        text = (
            f"consumer group {group!r} did not commit past the {self.size} canary messages"
            f" within {self.canary.wait_label}"
        )
        if self.lagging:
            text += f": {describe_positions(self.lagging)}"
        if self.last_error:
            text += f"; last error: {self.last_error}"
        return text
