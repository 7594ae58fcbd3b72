"""The chaos soak's invariants, evaluated on what the soak recorded (pure: no servers).

The soak (``driver.py``) records the events it produced, every handler call of the
``dlqctl consume`` child, every message a witness consumer read, the faults it injected and,
through test-only triggers on its own database, every row inserted into, changed in and
deleted from ``dlq`` and ``dlq_attempts``. ``evaluate`` turns that into one ``Check`` per
invariant, with counts and, for a failure, the entries and events concerned.

tansu keeps messages in memory only: a SIGKILL and restart brings back an empty cluster. What
that makes unverifiable is counted on its own ("lost by the broker restart") and only inside
a window the soak can bound, never silently dropped and never counted as a pass.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FAILING_KINDS = ("fail", "until-A", "until-B")
KINDS = ("ok", *FAILING_KINDS)
# Seconds the consumer may take to store a failed event when nothing stops it (it stores at
# the end of a batch, or within 1 s; generous for a loaded machine).
STORE_GRACE = 10.0
# After PostgreSQL is back, the consumer's next write attempt comes within its backoff cap.
PG_BACKOFF_GRACE = 6.0
# A run with batches of one marks an entry this soon after its acknowledgement (generous);
# a delivery that failed ends only after the replay's delivery timeout (8 s in the soak).
SINGLE_MARK_GRACE = 4.0
# How many ids a failed check lists (the rest are counted).
SHOW = 20


@dataclass(frozen=True)
class Produced:
    """An event the soak's producer had acknowledged by the broker."""

    event_id: str
    n: int
    kind: str
    epoch: int  # broker incarnation it was acknowledged by (0, then one more per restart)
    partition: int
    offset: int
    at: float


@dataclass(frozen=True)
class HandlerCall:
    at: float
    event_id: str
    ok: bool


@dataclass(frozen=True)
class Witnessed:
    """A message the witness read (fillers are not kept)."""

    epoch: int
    topic: str
    partition: int
    offset: int
    event_id: str | None
    kind: str | None
    dlq_id: str | None  # the dlq-id header of a replayed message
    retry_count: int | None  # its dlq-retry-count header
    at: float


@dataclass(frozen=True)
class BrokerKill:
    """One SIGKILL and restart of tansu.

    ``caught_up_at``: when the witness had read everything acknowledged before the kill
    (None: it could not catch up in time, and the whole incarnation counts as at risk).
    """

    epoch: int  # the incarnation that ended
    caught_up_at: float | None
    killed_at: float
    restarted_at: float
    started_at: float  # when the incarnation that ended began


@dataclass(frozen=True)
class PgOutage:
    kind: str  # "fast" (SIGINT) or "kill" (SIGKILL)
    down_at: float
    up_at: float


@dataclass(frozen=True)
class EntryRow:
    """A row ever inserted into dlq (from the insert log), with what became of it."""

    dlq_id: str
    consumer: str
    event_id: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    replayed_from: str | None  # the dlq-id header the failing message carried
    replayed_consumer: str | None  # its dlq-consumer header
    inserted_at: float
    deleted_at: float | None = None
    status_when_deleted: str | None = None
    status: str | None = None  # now (None once deleted)


@dataclass(frozen=True)
class StatusChange:
    dlq_id: str
    old_status: str
    new_status: str
    retry_count: int
    at: float
    by: str | None = None  # status_changed_by: the run's actor


@dataclass(frozen=True)
class Sample:
    """The consumer group's committed offsets (partition -> offset) as read at ``at``: the
    moment the answer arrived, so every commit it shows happened before."""

    at: float
    epoch: int
    committed: dict[int, int]


@dataclass(frozen=True)
class Attempt:
    """A dlq_attempts row ever recorded (``failed_at``: the moment of its statement)."""

    dlq_id: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    failed_at: float


@dataclass(frozen=True)
class ProcessLeft:
    pid: int
    cmdline: str


@dataclass
class Record:
    """Everything a soak run recorded."""

    consumer: str
    input_topic: str
    final_epoch: int
    produced: list[Produced]
    calls: list[HandlerCall]
    witnessed: list[Witnessed]
    kills: list[BrokerKill]
    outages: list[PgOutage]
    entries: list[EntryRow]
    changes: list[StatusChange]
    samples: list[Sample]
    attempts: list[Attempt]
    fixes: dict[str, float]  # failing kind -> when its fix was deployed
    witness_ends: dict[tuple[int, int], int]  # (epoch, partition) -> offset after the last read
    processes_left: list[ProcessLeft]
    consumer_exit: int | None
    samples_skipped: Counter[str] = field(default_factory=Counter)
    witness_final_ok: bool = True
    single_batches: set[str] = field(default_factory=set)  # actors of --batch-size 1 runs


@dataclass
class Check:
    number: int
    title: str
    counts: dict[str, int]
    problems: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        status = "PASS" if self.passed else "FAIL"
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        out = [f"[{status}] {self.number}. {self.title}", f"       {counts}"]
        out += [f"       note: {n}" for n in self.notes]
        shown = self.problems[:SHOW]
        out += [f"       ! {p}" for p in shown]
        if len(self.problems) > len(shown):
            out.append(f"       ! ... and {len(self.problems) - len(shown)} more")
        return out


def evaluate(record: Record) -> list[Check]:
    return [
        check_stored_once(record),
        check_replayed_on_topic(record),
        check_no_pending_purged(record),
        check_commits(record),
        check_processes(record),
    ]


# -- 1. every failing event the consumer received is handled or stored exactly once ----------


def _terminal_failures(calls: Sequence[HandlerCall]) -> list[float]:
    """Times an event failed for good: the consumer retries once at once, so a failure is
    final when two calls in a row failed (the second is the retry)."""
    return [b.at for a, b in itertools.pairwise(calls) if not a.ok and not b.ok]


def store_deadline(failed_at: float, outages: Iterable[PgOutage]) -> float:
    """By when the consumer must have stored a failure, PostgreSQL outages included."""
    deadline = failed_at + STORE_GRACE
    for outage in sorted(outages, key=lambda o: o.down_at):
        if outage.down_at <= deadline and outage.up_at >= failed_at:
            deadline = max(deadline, outage.up_at + PG_BACKOFF_GRACE + STORE_GRACE)
    return deadline


def check_stored_once(record: Record) -> Check:
    calls_of: dict[str, list[HandlerCall]] = defaultdict(list)
    for call in record.calls:
        calls_of[call.event_id].append(call)
    origin: dict[str, list[EntryRow]] = defaultdict(list)
    by_id = {e.dlq_id: e for e in record.entries}
    produced_ids = {p.event_id for p in record.produced}
    problems: list[str] = []
    counts: Counter[str] = Counter()
    for entry in record.entries:
        if entry.consumer != record.consumer:
            problems.append(f"entry {entry.dlq_id} of an unknown consumer {entry.consumer!r}")
        elif entry.event_id not in produced_ids:
            problems.append(
                f"entry {entry.dlq_id}: event {entry.event_id} was never produced (acknowledged)"
            )
        elif entry.replayed_from is None:
            origin[entry.event_id].append(entry)
        else:
            counts["new entries for a replay of a purged entry"] += 1
            first = by_id.get(entry.replayed_from)
            if first is None or first.deleted_at is None or first.deleted_at >= entry.inserted_at:
                state = (
                    "not in the table"
                    if first is None
                    else "still there"
                    if first.deleted_at is None
                    else "deleted only after it"
                )
                problems.append(
                    f"DUPLICATE: entry {entry.dlq_id} (event {entry.event_id}) was created for a"
                    f" replay of entry {entry.replayed_from}, which was {state}: the failure"
                    " should have linked back"
                )
    kills = sorted(k.killed_at for k in record.kills)
    for produced in record.produced:
        calls = calls_of.get(produced.event_id, [])
        failing = produced.kind in FAILING_KINDS
        if not calls:
            if produced.epoch < record.final_epoch:
                counts["lost by the broker restart before the consumer read them"] += 1
                if failing:
                    counts["... of them failing events"] += 1
            else:
                problems.append(
                    f"NOT RECEIVED: event {produced.event_id} ({produced.kind}) at"
                    f" {record.input_topic}[{produced.partition}]@{produced.offset}, acknowledged"
                    " after the last broker restart, never reached the handler"
                )
            continue
        counts["received"] += 1
        terminal = _terminal_failures(calls)
        stored = origin.get(produced.event_id, [])
        if not terminal:
            counts["handled (never failed for good)"] += 1
            if stored:
                ids = ", ".join(e.dlq_id for e in stored)
                problems.append(
                    f"UNEXPECTED: event {produced.event_id} never failed twice in a row, yet has"
                    f" entries {ids}"
                )
            continue
        counts["failed for good"] += 1
        if len(stored) == 1:
            counts["stored exactly once"] += 1
        elif not stored:
            failed_at = terminal[-1]
            deadline = store_deadline(failed_at, record.outages)
            if any(failed_at < k <= deadline for k in kills):
                counts["lost by the broker restart before it was stored"] += 1
            else:
                problems.append(
                    f"MISSING: event {produced.event_id} ({produced.kind}) failed for good at"
                    f" {failed_at:.3f} ({record.input_topic}[{produced.partition}]"
                    f"@{produced.offset}) and has no entry"
                )
        else:
            ids = ", ".join(f"{e.dlq_id}@{e.source_partition}/{e.source_offset}" for e in stored)
            problems.append(f"DUPLICATE: event {produced.event_id} is stored {len(stored)}x: {ids}")
    return Check(
        1,
        "every failing event the consumer received is handled or stored exactly once",
        {
            k: counts[k]
            for k in (
                "received",
                "handled (never failed for good)",
                "failed for good",
                "stored exactly once",
                "lost by the broker restart before it was stored",
                "new entries for a replay of a purged entry",
                "lost by the broker restart before the consumer read them",
                "... of them failing events",
            )
        }
        | {"problems": len(problems)},
        problems,
    )


# -- 2. no entry marked replayed without its message on the topic ---------------------------


def at_risk(at: float, kills: Sequence[BrokerKill], *, single: bool = False) -> BrokerKill | None:
    """The broker restart that may have wiped a message acknowledged for a mark at ``at``.

    Before each kill the witness caught up with everything acknowledged so far, so only a
    message acknowledged after that and before the kill can be lost. A run whose batch
    straddles the kill marks its acknowledged entries only when the rest of the batch has
    failed (its delivery timeout, up to the restart); a run with batches of one
    (``single``) marks right after the acknowledgement, within ``SINGLE_MARK_GRACE``.
    """
    for kill in kills:
        since = kill.caught_up_at if kill.caught_up_at is not None else kill.started_at
        until = kill.killed_at + SINGLE_MARK_GRACE if single else kill.restarted_at
        if since < at <= until:
            return kill
    return None


def check_replayed_on_topic(record: Record) -> Check:
    seen = {(w.dlq_id, w.retry_count) for w in record.witnessed if w.dlq_id is not None}
    problems: list[str] = []
    counts: Counter[str] = Counter()
    marked = set()
    for change in record.changes:
        if change.new_status != "replayed":
            continue
        counts["marks"] += 1
        marked.add((change.dlq_id, change.retry_count))
        if (change.dlq_id, change.retry_count) in seen:
            counts["message read by the witness"] += 1
        elif at_risk(change.at, record.kills, single=change.by in record.single_batches):
            counts["lost by the broker restart (acknowledged, wiped before it was read)"] += 1
        else:
            problems.append(
                f"NO MESSAGE: entry {change.dlq_id} marked replayed (retry_count"
                f" {change.retry_count}) at {change.at:.3f}; no message with dlq-id"
                f" {change.dlq_id} and dlq-retry-count {change.retry_count} was read"
            )
    copies = Counter((w.dlq_id, w.retry_count) for w in record.witnessed if w.dlq_id is not None)
    counts["entries published again (at-least-once: a killed or failed run)"] = sum(
        n - 1 for n in copies.values()
    ) + len(seen - marked)
    notes = [] if record.witness_final_ok else ["the witness did not catch up at the end"]
    if not record.witness_final_ok:
        problems.append("the witness did not read the topics to their end after the run")
    keys = (
        "marks",
        "message read by the witness",
        "lost by the broker restart (acknowledged, wiped before it was read)",
        "entries published again (at-least-once: a killed or failed run)",
    )
    return Check(
        2,
        "no entry marked replayed without its message on the topic",
        {k: counts[k] for k in keys} | {"problems": len(problems)},
        problems,
        notes,
    )


# -- 3. no pending entry purged -------------------------------------------------------------


def check_no_pending_purged(record: Record) -> Check:
    deleted = [e for e in record.entries if e.deleted_at is not None]
    by_status = Counter(e.status_when_deleted for e in deleted)
    problems = [
        f"PENDING PURGED: entry {e.dlq_id} (event {e.event_id}) was deleted at"
        f" {e.deleted_at:.3f} while pending"
        for e in deleted
        if e.status_when_deleted == "pending"
    ]
    counts = {
        "deleted": len(deleted),
        "of them replayed": by_status["replayed"],
        "discarded": by_status["discarded"],
        "pending": by_status["pending"],
    }
    return Check(3, "no pending entry purged", counts, problems)


# -- 4. the consumer's committed offsets never pass an unstored failure ----------------------


def failing_before(kind: str | None, fixes: dict[str, float], at: float) -> bool:
    """Whether the handler certainly failed an event of ``kind`` that it handled before
    ``at``."""
    if kind == "fail":
        return True
    if kind in FAILING_KINDS:
        fixed = fixes.get(kind)
        return fixed is None or fixed > at
    return False


def check_commits(record: Record) -> Check:
    """Each failing message of the input topic must be stored (an entry, or an attempt of the
    entry it replays) before the first sample whose committed offset passed it."""
    stored_at: dict[tuple[int, int], float] = {}
    for entry in record.entries:
        if entry.source_topic == record.input_topic and entry.source_offset is not None:
            key = (entry.source_partition or 0, entry.source_offset)
            stored_at[key] = min(stored_at.get(key, entry.inserted_at), entry.inserted_at)
    for attempt in record.attempts:
        if attempt.source_topic == record.input_topic and attempt.source_offset is not None:
            key = (attempt.source_partition or 0, attempt.source_offset)
            stored_at[key] = min(stored_at.get(key, attempt.failed_at), attempt.failed_at)
    passed_at: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    for sample in sorted(record.samples, key=lambda s: s.at):
        for partition, offset in sample.committed.items():
            passed_at[(sample.epoch, partition)].append((offset, sample.at))
    counts: Counter[str] = Counter()
    problems: list[str] = []
    for msg in record.witnessed:
        if msg.topic != record.input_topic:
            continue
        # The first sample whose committed offset is past the message.
        first = next(
            (
                at
                for offset, at in passed_at.get((msg.epoch, msg.partition), [])
                if offset > msg.offset
            ),
            None,
        )
        if first is None or not failing_before(msg.kind, record.fixes, first):
            continue
        counts["failing messages below a committed offset"] += 1
        stored = stored_at.get((msg.partition, msg.offset))
        if stored is not None and stored < first:
            counts["stored before the commit was seen"] += 1
            continue
        what = f"a replay of entry {msg.dlq_id}" if msg.dlq_id else "the original"
        when = "never" if stored is None else f"only at {stored:.3f}"
        problems.append(
            f"UNSTORED BELOW A COMMIT: {record.input_topic}[{msg.partition}]@{msg.offset} (event"
            f" {msg.event_id}, {msg.kind}, {what}) was below a committed offset sampled at"
            f" {first:.3f}; stored {when}"
        )
    # Offsets below a commit the witness never read: wiped by a restart first (a cluster
    # that was killed) or a witness that fell behind (the last one: a failure).
    highest: dict[tuple[int, int], int] = {}
    for sample in record.samples:
        for partition, offset in sample.committed.items():
            key = (sample.epoch, partition)
            highest[key] = max(highest.get(key, 0), offset)
    for (epoch, partition), offset in sorted(highest.items()):
        unread = offset - record.witness_ends.get((epoch, partition), 0)
        if unread <= 0:
            continue
        if epoch < record.final_epoch:
            counts["offsets below a commit, wiped before the witness read them"] += unread
        else:
            problems.append(
                f"the witness never read {record.input_topic}[{partition}] up to the committed"
                f" offset {offset}"
            )
    if not record.samples:
        problems.append("no committed offsets were sampled")
    title = "the consumer's committed offsets never pass an unstored failure"
    notes = [f"samples skipped: {dict(record.samples_skipped)}"] if record.samples_skipped else []
    return Check(
        4,
        title,
        {
            "samples": len(record.samples),
            "failing messages below a committed offset": counts[
                "failing messages below a committed offset"
            ],
            "stored before the commit was seen": counts["stored before the commit was seen"],
            "offsets below a commit, wiped before the witness read them": counts[
                "offsets below a commit, wiped before the witness read them"
            ],
            "problems": len(problems),
        },
        problems,
        notes,
    )


# -- 5. no process left behind --------------------------------------------------------------


def check_processes(record: Record) -> Check:
    problems = [f"LEFT BEHIND: pid {p.pid}: {p.cmdline}" for p in record.processes_left]
    if record.consumer_exit != 0:
        problems.append(f"dlqctl consume exited {record.consumer_exit} on SIGTERM (expected 0)")
    return Check(
        5,
        "no process left behind",
        {
            "left behind": len(record.processes_left),
            "consumer exit code": record.consumer_exit or 0,
        },
        problems,
    )
