"""`dlqctl replay`: republish entries to Kafka and mark them replayed.

It follows the shape of every batch run (dlqctl.core.runs). The run walks the selection in
(failed_at, dlq_id) order with a keyset cursor. Each batch is one transaction: claim
(``FOR UPDATE SKIP LOCKED``) → produce → flush → mark only the entries whose delivery
report had no error → commit. Marking batch N (UPDATE + COMMIT, the slow part) overlaps
with claiming and producing batch N+1 on a second connection; Kafka still sees the batches
strictly in order, and nothing is marked before it was delivered, so a crash at any point
can only cause a re-publish.

The batches come from a claim source: the selection walked from its keyset cursor
(``SelectionClaims``), or the entries of a plan by id (``PlanClaims``, usecases/plans.py).
With a canary, the run first claims only the canary's entries, waits and checks them
(``CanaryWatch``, usecases/canary.py), and goes on with the same source only if the
canary passed: one run, one summary, one audit row.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any
from uuid import UUID

from dlqctl.core.canary import CanaryMessage, CanaryOutcome, CanaryReport
from dlqctl.core.errors import DlqctlError, Interrupted, UsageError
from dlqctl.core.models import MatchCount, Status, WriteResult
from dlqctl.core.replay import (
    RateLimiter,
    ReplayPlan,
    ReplayReport,
    ReplayRequest,
    TopicCount,
    list_ids,
    missing_topic_error,
    resolve_topic,
    validate_topic_name,
    wire_size,
)
from dlqctl.core.runs import AUDIT_WARNING, RunListener, SilentListener
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
from dlqctl.kafka.producer import (
    Deliveries,
    PositionedDeliveries,
    ReplayProducer,
    max_message_bytes,
)
from dlqctl.usecases.audit import audit_record, record_run
from dlqctl.usecases.canary import CanaryWatch
from dlqctl.usecases.claims import ClaimSource, SelectionClaims, row_message
from dlqctl.usecases.plans import PlanClaims, check_plan, refuse_existing, write_plan

APPLICATION_NAME = "dlqctl replay"
# How many possibly oversized entries the preflight measures exactly.
OVERSIZE_CHECK_ROWS = 1000


# Failure reasons of entries that were never sent, or sent and not marked.
NO_TOPIC = (
    "no target topic: the entry failed after the run was planned and its consumer has no"
    " recorded topic or DLQCTL_TOPIC_MAP entry"
)
NOT_MARKED = (
    "delivered, but the database failed before it was marked replayed; the next run"
    " publishes it again"
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
    if request.plan_out is not None:
        refuse_existing(request.plan_out)
    # Created before the first query: its connection and idempotent start-up (~0.5 s)
    # overlap with planning.
    producer = None if request.dry_run else ReplayProducer(settings)
    try:
        with session(settings.dsn, application_name=APPLICATION_NAME) as conn:
            source: ClaimSource
            explicit: list[UUID] = []
            if request.plan is not None:
                plan = check_plan(conn, request.plan, full=request.dry_run)
                source = PlanClaims(request.plan)
            else:
                selection, explicit, ineligible = _select(conn, request)
                max_bytes = (
                    producer.max_message_bytes
                    if producer
                    else max_message_bytes(settings.producer_config())
                )
                plan, selection = _plan(conn, selection, request, settings, max_bytes, ineligible)
                source = SelectionClaims(selection, request.topic, settings.topic_map)
            conn.rollback()
            if producer is None:
                listener.note("dry run: nothing is sent or changed (Kafka is not contacted)")
                report = _dry_run_report(plan)
                if request.plan_out is not None:
                    report.plan_file = write_plan(
                        conn, selection, request, settings, request.plan_out
                    )
                    report.plan_path = request.plan_out
                    report.result.extra["plan"] = report.plan_file.summary().to_json()
                    report.result.extra["plan_file"] = str(request.plan_out)
                return report
            for note in _preflight_topics(producer, plan):
                listener.note(note)
            if stop.is_set():
                raise Interrupted("interrupted before anything was sent; nothing changed")
            listener.confirm(plan)
            run = ReplayRun(settings, conn, producer, source, request, listener, stop)
            result = run.execute(plan)
            report = ReplayReport(
                result=result,
                plan=plan,
                error=run.error_line(result),
                canary=run.canary_report,
                skips=tuple(run.skips()),
            )
            if not _audit(conn, settings, report, explicit, request):
                if report.error:  # one line on stderr says it all
                    report.error += " (the run could not be recorded in the audit log)"
                else:
                    listener.note(AUDIT_WARNING)
            report.result.error = report.error  # the summary says why it failed or stopped
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
        target = resolve_topic(
            request.topic, row[q.SOURCE_TOPIC], row[q.CONSUMER], settings.topic_map
        )
        if target is None:
            continue  # no topic: refused separately, before this check
        _, key, value, headers = row_message(row, target)
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
        matched=plan.matched,
        succeeded=plan.total,
        skipped=len(plan.plan_skips),
        ineligible=len(plan.ineligible),
        topics=plan.topics,
    )
    if plan.plan is not None:
        result.extra["plan"] = plan.plan.to_json()
        result.extra["skipped_entries"] = _skips_json(plan.plan_skips)
    return ReplayReport(result=result, plan=plan, skips=plan.plan_skips)


def _skips_json(skips: Sequence[tuple[UUID, str]]) -> list[dict[str, str]]:
    return [{"dlq_id": str(dlq_id), "reason": reason} for dlq_id, reason in skips]


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
        source: ClaimSource,
        request: ReplayRequest,
        listener: RunListener[ReplayPlan],
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.target = describe_target(settings.dsn)
        self.conn = conn
        self.producer = producer
        self.source = source
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
        self.exhausted = False  # the source has nothing more
        self._turn = 0
        self.watch = (
            CanaryWatch(settings, request.canary, listener, stop) if request.canary else None
        )
        self.canary_report: CanaryReport | None = None

    def execute(self, plan: ReplayPlan) -> WriteResult:
        self.listener.started(plan.total)
        if plan.total:
            second = connect(self.settings.dsn, application_name=APPLICATION_NAME)
            try:
                with ThreadPoolExecutor(1, thread_name_prefix="dlqctl-mark") as marker:
                    conns = [self.conn, second]
                    if self.watch is None or self._canary(conns, marker):
                        self._batches(conns, marker, self.request.limit)
            finally:
                second.close()
        elif self.watch is not None:
            self.canary_report = self.watch.report([], processed=True)
        # Skipped: selected when the run was planned but not attempted by it (held or
        # changed by another run, or not reached after an interrupt, a failure or a canary
        # that did not pass).
        attempted = self.succeeded + len(self.failures)
        skipped = max(0, plan.matched - attempted)
        if self.interrupted:
            outcome = "interrupted"
        elif self.unavailable or self.database_error or self.failures or self._canary_failed():
            outcome = "failed"
        else:
            outcome = "ok"
        extra: dict[str, Any] = {}
        if self.canary_report is not None:
            extra["canary"] = self.canary_report.to_json()
        if plan.plan is not None:
            extra["plan"] = plan.plan.to_json()
            extra["skipped_entries"] = _skips_json(self.skips())
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
            extra=extra,
        )

    def skips(self) -> list[tuple[UUID, str]]:
        """Entries the run skipped with a reason (a plan run's changed or held entries)."""
        return list(self.source.skips) if isinstance(self.source, PlanClaims) else []

    def _canary_failed(self) -> bool:
        report = self.canary_report
        return report is not None and report.outcome is not CanaryOutcome.PASSED

    def _canary(self, conns: list[Connection], marker: ThreadPoolExecutor) -> bool:
        """Send the canary, wait, check; whether the run may go on with the rest."""
        watch = self.watch
        assert watch is not None and self.request.canary is not None
        size = self.request.canary.size
        if self.request.limit is not None:
            size = min(size, self.request.limit)
        self.listener.note(f"canary: replaying the first {size} entries")
        self._batches(conns, marker, size, watch)
        if self.interrupted or self.unavailable or self.database_error or self.failures:
            # What was sent and marked may already have failed again.
            refailed = self._refailed(watch) if watch.size and not self.database_error else []
            self.canary_report = watch.report(refailed, processed=False)
            return False
        processed = watch.wait()
        if self.stop.is_set():
            self.interrupted = True
        refailed = self._refailed(watch)
        checked = self.database_error is None
        self.canary_report = watch.report(refailed, processed=processed and checked)
        rest = not self.exhausted and (
            self.request.limit is None or self.claimed < self.request.limit
        )
        if self.database_error is None:
            self.listener.note(watch.verdict_note(self.canary_report, rest))
        return (
            self.canary_report.outcome is CanaryOutcome.PASSED
            and not self.interrupted
            and self.database_error is None
        )

    def _refailed(self, watch: CanaryWatch) -> list[UUID]:
        try:
            with batch_errors(self.target):
                return watch.refailed(self.conn)
        except DlqctlError as exc:
            self.database_error = exc.message
            return []

    def _batches(
        self,
        conns: list[Connection],
        marker: ThreadPoolExecutor,
        limit: int | None,
        watch: CanaryWatch | None = None,
    ) -> None:
        """Claim, publish and mark batches until the source is done or ``limit`` entries
        were claimed; every mark is settled on return. ``watch``: the batches are the
        canary's."""
        size = self.request.effective_batch_size()
        marking: tuple[Future[None], list[tuple[str, str]]] | None = None
        try:
            while not self.unavailable and not self.database_error:
                if self.stop.is_set():
                    self.interrupted = True
                    break
                want = size if limit is None else min(size, limit - self.claimed)
                if want <= 0:
                    break
                conn = conns[self._turn % 2]
                self._turn += 1
                try:
                    with batch_errors(self.target):
                        rows = self.source.claim(conn, want)
                        if rows is not None and watch is not None:
                            watch.before_send(conn, rows)
                except DlqctlError as exc:
                    self.database_error = exc.message
                    break
                if rows is None:
                    conn.rollback()
                    self.exhausted = True
                    break
                deliveries = Deliveries() if watch is None else PositionedDeliveries()
                delivered = self._publish(rows, deliveries)
                if watch is not None:
                    self._record_canary(watch, rows, delivered, deliveries)
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

    def _record_canary(
        self,
        watch: CanaryWatch,
        rows: list[tuple[Any, ...]],
        delivered: list[tuple[str, str]],
        deliveries: Deliveries,
    ) -> None:
        assert isinstance(deliveries, PositionedDeliveries)
        topics = dict(delivered)
        for index, (partition, offset) in sorted(deliveries.positions.items()):
            row = rows[index]
            topic = topics.get(row[q.ID])
            if topic is None:
                continue
            watch.sent(
                CanaryMessage(
                    dlq_id=UUID(row[q.ID]),
                    consumer=row[q.CONSUMER],
                    event_id=UUID(row[q.EVENT_ID]),
                    attempt=row[q.RETRY_COUNT] + 1,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                )
            )

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

    def _publish(
        self, rows: list[tuple[Any, ...]], deliveries: Deliveries
    ) -> list[tuple[str, str]]:
        """Produce the claimed rows, wait for their reports; (id, topic) of those delivered."""
        producer, stop, limiter, source = self.producer, self.stop, self.limiter, self.source
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
            message = source.message(row)
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
        canary = self.canary_report
        if result.outcome == "interrupted":
            during = ""
            if canary is not None and canary.outcome is not CanaryOutcome.PASSED:
                during = " during the canary; nothing more was sent"
                if canary.refailed:
                    during += f" ({len(canary.refailed)} canary entries had failed again)"
            return (
                f"interrupted{during}: {result.succeeded} entries replayed, {result.failed}"
                f" failed, {result.skipped} not attempted (they stay as they were)"
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
            stopped = ""
            if canary is not None and canary.outcome is not CanaryOutcome.PASSED:
                stopped = f"; the canary did not pass: {result.skipped} entries were not sent"
            return (
                f"{result.failed} of {result.failed + result.succeeded} entries were not"
                f" replayed (reasons listed with the failures); they stay as they were{stopped}"
            )
        if canary is not None and canary.outcome is CanaryOutcome.REFAILED:
            return (
                f"canary: {len(canary.refailed)} of {canary.size} replayed entries failed again"
                f" ({list_ids([str(i) for i in canary.refailed])}); nothing more was sent"
                f" ({result.skipped} entries not attempted) — they are pending again: fix the"
                " cause, then rerun the same command"
            )
        if canary is not None and canary.outcome is CanaryOutcome.NOT_PROCESSED:
            assert self.watch is not None
            return (
                f"canary: {self.watch.not_processed_reason()}; nothing more was sent"
                f" ({result.skipped} entries not attempted) — check that the group consumes"
                " the topic, then rerun the same command (or raise --canary-wait)"
            )
        return None


def _audit(
    conn: Connection,
    settings: Settings,
    report: ReplayReport,
    explicit: list[UUID],
    request: ReplayRequest,
) -> bool:
    """One audit row for the run; whether it was written (failing to write it is not the
    run's outcome: the caller says so)."""
    details: dict[str, Any] = {
        "options": {
            k: v
            for k, v in (
                ("topic", request.topic),
                ("rate", request.rate),
                ("batch_size", request.batch_size),
                ("limit", request.limit),
                ("canary", request.canary.to_json() if request.canary else None),
            )
            if v is not None
        },
    }
    if report.canary is not None:
        details["canary"] = report.canary.to_json()
    if report.plan.plan is not None:
        details["plan"] = report.plan.plan.to_json()
        if report.skips:
            details["skipped_entries"] = _skips_json(report.skips)
    if report.error:
        details["error"] = report.error
    record = audit_record(
        settings, report.result, request.entry_filter, ids=explicit, details=details
    )
    return record_run(settings, record, conn)
