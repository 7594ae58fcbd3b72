"""`dlqctl replay`: republish entries to Kafka and mark them replayed.

It follows the shape of every batch run (dlqctl.core.runs). The run walks the selection in
(failed_at, dlq_id) order with a keyset cursor. Each batch is one transaction: claim
(``FOR UPDATE SKIP LOCKED``) → produce → flush → mark only the entries whose delivery
report had no error → commit. Marking batch N (UPDATE + COMMIT, the slow part) overlaps
with claiming and producing batch N+1 on a second connection; Kafka still sees the batches
strictly in order, and nothing is marked before it was delivered, so a crash at any point
can only cause a re-publish.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any
from uuid import UUID

from dlqctl.core.errors import DlqctlError, Interrupted, UsageError
from dlqctl.core.models import MatchCount, Status, WriteResult
from dlqctl.core.replay import (
    Headers,
    RateLimiter,
    ReplayPlan,
    ReplayReport,
    ReplayRequest,
    TopicCount,
    list_ids,
    message_headers,
    message_key,
    message_value,
    missing_topic_error,
    resolve_topic,
    validate_topic_name,
    wire_size,
)
from dlqctl.core.runs import RunListener, SilentListener
from dlqctl.core.settings import Settings
from dlqctl.db import replay_queries as q
from dlqctl.db.connection import (
    Connection,
    batch_errors,
    connect,
    describe_target,
    release,
    session,
)
from dlqctl.db.entries import resolve_ids, split_explicit_ids
from dlqctl.kafka.producer import Deliveries, ReplayProducer, max_message_bytes
from dlqctl.usecases.audit import audit_record, record_run

APPLICATION_NAME = "dlqctl replay"
# How many possibly oversized entries the preflight measures exactly.
OVERSIZE_CHECK_ROWS = 1000


Message = tuple[str, bytes | str, bytes | str | None, Headers]

# Failure reasons of entries that were never sent, or sent and not marked.
NO_TOPIC = (
    "no target topic: the entry failed after the run was planned and its consumer has no"
    " recorded topic or DLQCTL_TOPIC_MAP entry"
)
NOT_MARKED = (
    "delivered, but the database failed before it was marked replayed; the next run"
    " publishes it again"
)


def _message(row: Sequence[Any], topic: str | None, topic_map: dict[str, str]) -> Message | None:
    """(topic, key, value, headers) of the Kafka message for one claimed row (SPEC §5);
    None when no target topic is known for it."""
    consumer = row[q.CONSUMER]
    target = resolve_topic(topic, row[q.SOURCE_TOPIC], consumer, topic_map)
    if target is None:
        return None
    return (
        target,
        message_key(row[q.EVENT_KEY], row[q.EVENT_ID]),
        message_value(row[q.EVENT_RAW], row[q.PAYLOAD]),
        message_headers(row[q.EVENT_HEADERS], row[q.ID], consumer, row[q.RETRY_COUNT] + 1),
    )


def replay(
    settings: Settings,
    request: ReplayRequest,
    *,
    listener: RunListener[ReplayPlan] | None = None,
    stop: threading.Event | None = None,
) -> ReplayReport:
    """Replay the selected entries; ``stop`` ends the run cleanly after the in-flight batch."""
    listener = listener or SilentListener()
    stop = stop or threading.Event()
    # Created before the first query: its connection and idempotent start-up (~0.5 s)
    # overlap with planning.
    producer = None if request.dry_run else ReplayProducer(settings)
    try:
        with session(settings.dsn, application_name=APPLICATION_NAME) as conn:
            selection, explicit, ineligible = _select(conn, request)
            max_bytes = (
                producer.max_message_bytes
                if producer
                else max_message_bytes(settings.producer_config())
            )
            plan, selection = _plan(conn, selection, request, settings, max_bytes, ineligible)
            conn.rollback()
            if producer is None:
                listener.note("dry run: nothing is sent or changed (Kafka is not contacted)")
                return _dry_run_report(plan)
            for note in _preflight_topics(producer, plan):
                listener.note(note)
            if stop.is_set():
                raise Interrupted("interrupted before anything was sent; nothing changed")
            listener.confirm(plan)
            run = ReplayRun(settings, conn, producer, selection, request, listener, stop)
            result = run.execute(plan)
            report = ReplayReport(result=result, plan=plan, error=run.error_line(result))
            _audit(conn, settings, report, explicit, request, listener)
            return report
    finally:
        if producer is not None:
            producer.close()


def _select(conn: Connection, request: ReplayRequest) -> tuple[q.Selection, list[UUID], list[UUID]]:
    """The run's walk over the request's selection (explicit ids resolved), the eligible
    explicit ids and the ineligible ones."""
    selection = request.selection
    if not selection.ids:
        return q.Selection(selection), [], []
    resolved = resolve_ids(conn, selection.ids)
    eligible, ineligible = split_explicit_ids(conn, resolved, selection, request.statuses)
    return q.Selection(selection, ids=eligible), eligible, ineligible


def _plan(
    conn: Connection,
    selection: q.Selection,
    request: ReplayRequest,
    settings: Settings,
    max_bytes: int,
    ineligible: list[UUID],
) -> tuple[ReplayPlan, q.Selection]:
    """Count the selection per consumer and target topic; refuse before anything is sent
    when an entry has no target topic or cannot fit in a message."""
    selection = q.started_now(conn, selection)
    groups = q.plan_groups(conn, selection, limit=request.limit, max_bytes=max_bytes)
    unresolved = [
        g.consumer
        for g in groups
        if resolve_topic(request.topic, g.source_topic, g.consumer, settings.topic_map) is None
    ]
    if unresolved:
        raise missing_topic_error(unresolved)
    routes: Counter[tuple[str, str]] = Counter()
    statuses: Counter[tuple[str, Status]] = Counter()
    for g in groups:
        topic = resolve_topic(request.topic, g.source_topic, g.consumer, settings.topic_map)
        assert topic is not None
        if g.source_topic is None or request.topic:
            where = "--topic" if request.topic else f"the topic map entry for {g.consumer!r}"
            validate_topic_name(topic, where)
        routes[(g.consumer, topic)] += g.count
        statuses[(g.consumer, g.status)] += g.count
    plan = ReplayPlan(
        match_counts=tuple(MatchCount(c, s, n) for (c, s), n in sorted(statuses.items())),
        routes=tuple(TopicCount(c, t, n) for (c, t), n in sorted(routes.items())),
        ineligible=tuple(ineligible),
    )
    if groups:
        selection = selection.up_to(max(g.newest for g in groups))
    if any(g.maybe_oversize for g in groups):
        _refuse_oversize(conn, selection, request, settings, max_bytes)
    return plan, selection


def _refuse_oversize(
    conn: Connection,
    selection: q.Selection,
    request: ReplayRequest,
    settings: Settings,
    max_bytes: int,
) -> None:
    rows = q.oversize_candidates(
        conn, selection, limit=request.limit, max_bytes=max_bytes, at_most=OVERSIZE_CHECK_ROWS
    )
    too_big = []
    for row in rows:
        message = _message(row, request.topic, settings.topic_map)
        if message is None:
            continue  # no topic: refused separately, before this check
        _, key, value, headers = message
        if wire_size(key, value, headers) > max_bytes:
            too_big.append(row[q.ID])
    if too_big:
        raise UsageError(
            f"{len(too_big)} selected entries do not fit in one Kafka message"
            f" (producer message.max.bytes = {max_bytes}): {list_ids(too_big)};"
            " leave them out of the selection, or raise message.max.bytes in"
            " DLQCTL_KAFKA_PRODUCER_CONFIG (and the topic's max.message.bytes)"
        )


def _dry_run_report(plan: ReplayPlan) -> ReplayReport:
    result = WriteResult(
        action="replay",
        dry_run=True,
        matched=plan.total,
        succeeded=plan.total,
        ineligible=len(plan.ineligible),
        topics=plan.topics,
    )
    return ReplayReport(result=result, plan=plan)


def _preflight_topics(producer: ReplayProducer, plan: ReplayPlan) -> list[str]:
    """Every target topic exists, or the cluster creates topics on first use (notes say
    so); UsageError when it says it does not, KafkaError when it cannot be reached."""
    if not plan.topics:
        return []
    existing = producer.existing_topics()
    missing = sorted(set(plan.topics) - existing)
    if not missing:
        return []
    names = ", ".join(missing)
    auto = producer.auto_creates_topics()
    if auto is False:
        raise UsageError(
            f"target topic(s) {names} do not exist and the cluster does not create topics"
            " on first use (auto.create.topics.enable=false): create them first"
        )
    if auto:
        return [
            f"topic(s) {names} do not exist yet: the cluster will create them on first use"
            " (auto.create.topics.enable=true) with its default partitions and settings"
        ]
    return [
        f"topic(s) {names} do not exist yet: the cluster creates them on first use if it"
        " auto-creates topics (it did not report auto.create.topics.enable); otherwise"
        " their entries fail and stay pending"
    ]


class ReplayRun:
    """One replay run's batches and counts."""

    def __init__(
        self,
        settings: Settings,
        conn: Connection,
        producer: ReplayProducer,
        selection: q.Selection,
        request: ReplayRequest,
        listener: RunListener[ReplayPlan],
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.target = describe_target(settings.dsn)
        self.conn = conn
        self.producer = producer
        self.selection = selection
        self.request = request
        self.listener = listener
        self.stop = stop
        self.limiter = RateLimiter(request.rate, wait=stop.wait) if request.rate else None
        self.succeeded = 0  # delivered and marked replayed (committed)
        self.failures: list[tuple[UUID, str]] = []
        self.attempted = 0
        self.claimed = 0
        self.topics: Counter[str] = Counter()
        self.unavailable: str | None = None  # Kafka stopped acknowledging
        self.database_error: str | None = None  # claiming or marking failed
        self.interrupted = False

    def execute(self, plan: ReplayPlan) -> WriteResult:
        self.listener.started(plan.total)
        if plan.total:
            second = connect(self.settings.dsn, application_name=APPLICATION_NAME)
            try:
                with ThreadPoolExecutor(1, thread_name_prefix="dlqctl-mark") as marker:
                    self._batches([self.conn, second], marker)
            finally:
                second.close()
        # Skipped: selected when the run was planned but not attempted by it (held or
        # changed by another run, or not reached after an interrupt or a failure).
        attempted = self.succeeded + len(self.failures)
        skipped = max(0, plan.total - attempted)
        if self.interrupted:
            outcome = "interrupted"
        elif self.unavailable or self.database_error or self.failures:
            outcome = "failed"
        else:
            outcome = "ok"
        return WriteResult(
            action="replay",
            dry_run=False,
            matched=attempted + skipped,
            succeeded=self.succeeded,
            failed=len(self.failures),
            skipped=skipped,
            ineligible=len(plan.ineligible),
            failures=self.failures,
            topics=dict(sorted(self.topics.items())),
            outcome=outcome,
        )

    def _batches(self, conns: list[Connection], marker: ThreadPoolExecutor) -> None:
        query, params = q.claim_sql(self.selection)
        size = self.request.effective_batch_size()
        limit = self.request.limit
        cursor: tuple[Any, str] = (q.START_AT, q.START_ID)
        marking: tuple[Future[None], list[tuple[str, str]]] | None = None
        turn = 0
        try:
            while not self.unavailable and not self.database_error:
                if self.stop.is_set():
                    self.interrupted = True
                    break
                want = size if limit is None else min(size, limit - self.claimed)
                if want <= 0:
                    break
                conn = conns[turn % 2]
                turn += 1
                try:
                    with batch_errors(self.target):
                        batch = q.claim_batch(conn, query, params, cursor, want)
                except DlqctlError as exc:
                    self.database_error = exc.message
                    break
                if not batch.rows:
                    conn.rollback()
                    break
                cursor = batch.cursor
                delivered = self._publish(batch.rows)
                # The previous batch's commit must be done before this one's mark starts
                # (one marker thread, and the order of commits follows the batches).
                if marking is not None and not self._settle(*marking):
                    self.failures.extend((UUID(i), NOT_MARKED) for i, _ in delivered)
                    release(conn)
                    marking = None
                    break
                ids = [dlq_id for dlq_id, _ in delivered]
                marking = (marker.submit(self._mark, conn, ids), delivered)
                self.listener.advanced(self.attempted)
                if self.producer.fatal_error and not self.unavailable:
                    self.unavailable = self.producer.fatal_error
        finally:
            if marking is not None:
                self._settle(*marking)

    def _settle(self, marking: Future[None], delivered: list[tuple[str, str]]) -> bool:
        """Wait for a batch's mark; count it replayed, or (database failure) failed."""
        try:
            marking.result()
        except DlqctlError as exc:
            self.database_error = exc.message
            self.failures.extend((UUID(dlq_id), NOT_MARKED) for dlq_id, _ in delivered)
            return False
        self.succeeded += len(delivered)
        self.topics.update(topic for _, topic in delivered)
        return True

    def _publish(self, rows: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
        """Produce the claimed rows, wait for their reports; (id, topic) of those delivered."""
        producer, stop, limiter = self.producer, self.stop, self.limiter
        override, topic_map = self.request.topic, self.settings.topic_map
        deliveries = Deliveries()
        report = deliveries.report
        sent: list[tuple[int, str, str]] = []
        for index, row in enumerate(rows):
            if not row[q.CLAIMED]:
                continue  # held or changed by another run
            self.claimed += 1
            if limiter is not None:
                limiter.pace()
            if stop.is_set():
                continue  # interrupted: the rest of the batch is released unsent
            message = _message(row, override, topic_map)
            if message is None:
                self.failures.append((UUID(row[q.ID]), NO_TOPIC))
                self.attempted += 1
                continue
            topic, key, value, headers = message
            refused = producer.produce(topic, key, value, headers, partial(report, index))
            if refused is not None:
                deliveries.fail(index, refused)
            sent.append((index, row[q.ID], topic))
        unreported = producer.flush() if sent else 0
        delivered: list[tuple[str, str]] = []
        errors = deliveries.errors
        for index, dlq_id, topic in sent:
            if index in errors:
                self.failures.append((UUID(dlq_id), errors[index]))
            elif index in deliveries.acked:
                delivered.append((dlq_id, topic))
            else:
                self.failures.append(
                    (UUID(dlq_id), f"no delivery report within {producer.delivery_timeout:g}s")
                )
        self.attempted += len(sent)
        if unreported or deliveries.unavailable:
            reason = next(iter(errors.values()), "no delivery report")
            self.unavailable = reason
        return delivered

    def _mark(self, conn: Connection, ids: list[str]) -> None:
        """Mark the delivered ids and commit the batch (runs on the marker thread)."""
        try:
            with batch_errors(self.target):
                if ids:
                    q.mark_replayed(conn, ids, self.settings.actor)
                conn.commit()
        except BaseException:
            release(conn)
            raise

    def error_line(self, result: WriteResult) -> str | None:
        """One line on stderr saying why the run failed or stopped, or None."""
        if result.outcome == "interrupted":
            return (
                f"interrupted: {result.succeeded} entries replayed, {result.failed} failed,"
                f" {result.skipped} not attempted (they stay as they were)"
            )
        if self.database_error:
            unmarked = sum(1 for _, reason in result.failures if reason == NOT_MARKED)
            return (
                f"the database failed during the run ({self.database_error}):"
                f" {result.succeeded} entries were replayed and marked; {unmarked} delivered"
                " entries could not be marked and will be published again by the next run;"
                f" {result.skipped} were not attempted — rerun the same command when the"
                " database is back"
            )
        if self.unavailable:
            last = self.producer.last_error
            return (
                f"Kafka stopped acknowledging ({self.unavailable}"
                f"{'; last error: ' + last if last else ''}): {result.failed} entries failed,"
                f" {result.skipped} were not attempted; they stay as they were — rerun the same"
                " command when the brokers are back"
            )
        if result.failed:
            return (
                f"{result.failed} of {result.failed + result.succeeded} entries were not"
                " replayed (reasons listed with the failures); they stay as they were"
            )
        return None


def _audit(
    conn: Connection,
    settings: Settings,
    report: ReplayReport,
    explicit: list[UUID],
    request: ReplayRequest,
    listener: RunListener[ReplayPlan],
) -> None:
    """One audit row for the run; failing to write it is a warning, not the run's outcome."""
    details: dict[str, Any] = {
        "options": {
            k: v
            for k, v in (
                ("topic", request.topic),
                ("rate", request.rate),
                ("batch_size", request.batch_size),
                ("limit", request.limit),
            )
            if v is not None
        },
    }
    if report.error:
        details["error"] = report.error
    record = audit_record(
        settings, report.result, request.entry_filter, ids=explicit, details=details
    )
    if not record_run(settings, record, conn):
        listener.note("warning: the run could not be recorded in the audit log (dlq_actions)")
