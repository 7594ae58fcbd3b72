"""Replay plans: writing a selection as a plan file, reading one back, and replaying exactly
its entries (see docs/replay.md, "Plans").

A plan run claims the plan's entries by id, in plan order, a batch at a time
(``FOR UPDATE SKIP LOCKED`` on the primary key), and sends an entry only if its status,
retry_count, value and headers are still what the plan recorded; the others count as
skipped, each with its reason. Each entry goes to the topic the plan names.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from dlqctl.core.errors import UsageError
from dlqctl.core.models import MatchCount, Status
from dlqctl.core.plans import (
    PlanEntry,
    PlanFile,
    headers_sha256,
    parse_plan,
    value_sha256,
)
from dlqctl.core.replay import (
    ReplayPlan,
    ReplayRequest,
    TopicCount,
    kept_headers,
    message_value,
    resolve_topic,
)
from dlqctl.core.settings import Settings
from dlqctl.db import replay_queries as q
from dlqctl.db.connection import Connection
from dlqctl.usecases.claims import Message, row_message

# Entries read (or claimed) per statement when a plan is written or checked.
PLAN_READ_BATCH = 5000

HELD = "held by another run (a replay or discard working on it now)"
GONE = "no longer in the table (purged since the plan was made)"


def load_plan(path: Path) -> PlanFile:
    """The plan in ``path``; UsageError when it cannot be read, is malformed or was changed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read plan {path}: {exc}") from None
    return parse_plan(text, str(path))


def refuse_existing(path: Path) -> None:
    """A plan file is never overwritten: UsageError when ``path`` exists (or its folder
    does not)."""
    if path.exists() or path.is_symlink():
        raise UsageError(
            f"{path} exists: a plan file is never overwritten; choose another name or"
            " remove it first"
        )
    if not path.parent.is_dir():
        raise UsageError(f"cannot write plan {path}: folder {path.parent} does not exist")


def fingerprints(
    row: Sequence[Any], value: bytes | str | None = None, *, known: bool = False
) -> tuple[str | None, str]:
    """(value_sha256, headers_sha256) of the message a claimed row publishes (``known``:
    ``value`` is its value, computed already)."""
    if not known:
        value = message_value(row[q.EVENT_RAW], row[q.PAYLOAD], row[q.EDITED_RAW])
    stored = row[q.EDITED_HEADERS] if row[q.EDITED_HEADERS] is not None else row[q.EVENT_HEADERS]
    return value_sha256(value), headers_sha256(kept_headers(stored))


def plan_entry(row: Sequence[Any], topic: str) -> PlanEntry:
    value_hash, headers_hash = fingerprints(row)
    return PlanEntry(
        dlq_id=UUID(row[q.ID]),
        consumer=row[q.CONSUMER],
        topic=topic,
        status=Status(row[q.STATUS]),
        retry_count=row[q.RETRY_COUNT],
        value_sha256=value_hash,
        headers_sha256=headers_hash,
    )


def change_of(
    entry: PlanEntry,
    row: Sequence[Any] | None,
    value: bytes | str | None = None,
    *,
    known: bool = False,
) -> str | None:
    """Why a plan entry may not be sent now (``row``: the entry as it is), or None."""
    if row is None:
        return GONE
    value_hash, headers_hash = fingerprints(row, value, known=known)
    return entry.changes(Status(row[q.STATUS]), row[q.RETRY_COUNT], value_hash, headers_hash)


def write_plan(
    conn: Connection,
    selection: q.Selection,
    request: ReplayRequest,
    settings: Settings,
    path: Path,
) -> PlanFile:
    """Read the selection (oldest first) and write it to ``path`` as a plan, atomically."""
    q.one_snapshot(conn)  # the whole plan as of one moment
    entries: list[PlanEntry] = []
    cursor: tuple[datetime, str] = (q.START_AT, q.START_ID)
    limit = request.limit
    while limit is None or len(entries) < limit:
        want = PLAN_READ_BATCH if limit is None else min(PLAN_READ_BATCH, limit - len(entries))
        rows = q.plan_rows(conn, selection, cursor, want)
        if not rows:
            break
        cursor = (rows[-1][q.FAILED_AT], rows[-1][q.ID])
        for row in rows:
            topic = resolve_topic(
                request.topic, row[q.SOURCE_TOPIC], row[q.CONSUMER], settings.topic_map
            )
            if topic is None:  # failed after the run was planned, with no known topic
                continue
            entries.append(plan_entry(row, topic))
    conn.rollback()
    described = request.entry_filter.to_json()
    if request.limit is not None:
        described["limit"] = request.limit
    plan = PlanFile(
        created_at=datetime.now(UTC),
        actor=settings.actor,
        host=socket.gethostname(),
        filter=described,
        entries=tuple(entries),
    )
    _write_new(path, plan.render())
    return plan


def _write_new(path: Path, text: str) -> None:
    """Write ``text`` to a new file at ``path``: all of it or nothing, never over another
    file (a temporary file in the same folder, then a hard link, which fails if ``path``
    exists meanwhile)."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write plan {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)
        try:
            os.link(temp, path)
        except FileExistsError:
            refuse_existing(path)
            raise
        except OSError:  # no hard links here (some network filesystems): check, then rename
            refuse_existing(path)
            os.replace(temp, path)
    except UsageError:
        raise
    except OSError as exc:
        raise UsageError(f"cannot write plan {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def check_plan(conn: Connection, plan: PlanFile, *, full: bool) -> ReplayPlan:
    """What a plan run is about to do: its unchanged entries per consumer and status and per
    consumer and topic, and the entries that changed since the plan was made (no locks).

    ``full`` (a review): values and headers are compared too; otherwise (before a run,
    which compares them as it claims each entry) status and retry_count only.
    """
    statuses: Counter[tuple[str, Status]] = Counter()
    routes: Counter[tuple[str, str]] = Counter()
    skips: list[tuple[UUID, str]] = []
    for chunk in _chunks(plan.entries, PLAN_READ_BATCH):
        ids = [e.dlq_id for e in chunk]
        if full:
            rows = q.rows_by_ids(conn, ids)
        else:
            states = q.states_by_ids(conn, ids)
        for entry in chunk:
            if full:
                reason = change_of(entry, rows.get(str(entry.dlq_id)))
            else:
                state = states.get(str(entry.dlq_id))
                reason = GONE if state is None else entry.state_changes(*state)
            if reason is not None:
                skips.append((entry.dlq_id, reason))
                continue
            statuses[(entry.consumer, entry.status)] += 1
            routes[(entry.consumer, entry.topic)] += 1
    conn.rollback()
    return ReplayPlan(
        match_counts=tuple(MatchCount(c, s, n) for (c, s), n in sorted(statuses.items())),
        routes=tuple(TopicCount(c, t, n) for (c, t), n in sorted(routes.items())),
        listed=len(plan.entries),
        plan=plan.summary(),
        plan_skips=tuple(skips),
    )


def _chunks(entries: Sequence[PlanEntry], size: int) -> Iterator[Sequence[PlanEntry]]:
    for start in range(0, len(entries), size):
        yield entries[start : start + size]


class PlanClaims:
    """A plan run's claims: the plan's entries by id, in plan order, a batch at a time."""

    def __init__(self, plan: PlanFile) -> None:
        self.entries = plan.entries
        self.texts = [str(e.dlq_id) for e in plan.entries]  # ids as claimed rows hold them
        self.topics = dict(zip(self.texts, (e.topic for e in plan.entries), strict=True))
        self.next = 0
        self.skips: list[tuple[UUID, str]] = []
        self._values: dict[str, bytes | str | None] = {}  # of the batch claimed last

    def claim(self, conn: Connection, want: int) -> list[tuple[Any, ...]] | None:
        """Lock the next ``want`` entries of the plan; the unchanged ones, in plan order
        (None when the plan is done). Changed, held or missing ones are noted as skipped."""
        if self.next >= len(self.entries):
            return None
        start, self.next = self.next, min(self.next + want, len(self.entries))
        chunk, texts = self.entries[start : self.next], self.texts[start : self.next]
        rows = q.claim_by_ids(conn, [e.dlq_id for e in chunk])
        missing = [e.dlq_id for e, text in zip(chunk, texts, strict=True) if text not in rows]
        present = q.existing_ids(conn, missing) if missing else set()
        claimed = []
        self._values = {}
        for entry, text in zip(chunk, texts, strict=True):
            row = rows.get(text)
            if row is None:
                self.skips.append((entry.dlq_id, HELD if entry.dlq_id in present else GONE))
                continue
            value = message_value(row[q.EVENT_RAW], row[q.PAYLOAD], row[q.EDITED_RAW])
            reason = change_of(entry, row, value, known=True)
            if reason is not None:
                self.skips.append((entry.dlq_id, reason))
                continue
            self._values[row[q.ID]] = value
            claimed.append(row)
        return claimed

    def message(self, row: Sequence[Any]) -> Message | None:
        """The message, to the topic the plan names (its value as checked at the claim)."""
        dlq_id = row[q.ID]
        return row_message(row, self.topics[dlq_id], self._values[dlq_id], known=True)

    def not_reached(self) -> list[UUID]:
        """Entries the run never got to (it stopped early)."""
        return [e.dlq_id for e in self.entries[self.next :]]
