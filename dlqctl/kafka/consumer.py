"""The embedded consumer: a service's handler runs on each event; failing events land in
the DLQ table, nothing is lost, nothing is stored twice (see docs/consumer.md).

Importable without the CLI (no typer, no rich)::

    from dlqctl.kafka.consumer import DlqConsumer, PermanentError

    def on_event(event: dict) -> None:
        ...  # raise to fail; raise PermanentError to skip the retries

    DlqConsumer(on_event, consumer="orders-projector", topics=["orders.v1"]).run()

Guarantees: auto-commit and auto offset store are off; an offset is committed only when
every event before it in its partition was handled or its DLQ entry is stored. While the
database is down the assigned partitions are paused and the consumer keeps polling (so the
group keeps it), retrying the write with a backoff capped at 5 s. Async handlers are
awaited on one event loop of the consumer's; a replayed event that fails again links back
to its entry (db/writer.py); work from before a partition was revoked is dropped; an
optional HTTP endpoint serves Prometheus metrics and readiness (kafka/metrics.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from dlqctl.core.errors import ConfigError, DatabaseError, DatabaseUnavailable, KafkaError
from dlqctl.core.events import (
    MISSING,
    FailedEvent,
    check_consumer_name,
    decode_event,
    failed_event,
)
from dlqctl.core.handlers import HandlerCaller
from dlqctl.core.retry import (
    PermanentError,
    handler_backoff,
    retry_after_failure,
    retry_until_done,
)
from dlqctl.core.text import one_line
from dlqctl.db.writer import DlqWriter, StoredEntry
from dlqctl.kafka.clients import client_config
from dlqctl.kafka.offsets import OffsetTracker, TopicPartitionKey

if TYPE_CHECKING:
    from dlqctl.core.settings import Settings
    from dlqctl.kafka.metrics import ConsumerSnapshot, OperationsServer

__all__ = ["ConsumerStats", "DlqConsumer", "PermanentError"]

LOGGER = logging.getLogger("dlqctl.consumer")

Handler = Callable[[Any], object]

DEFAULT_BATCH_SIZE = 500
DEFAULT_STATS_INTERVAL = 60.0
DEFAULT_MAX_POLL_INTERVAL_MS = 300_000
POLL_TIMEOUT = 0.5  # longest blocking call: bounds how long a stop request waits
PENDING_MAX_AGE = 1.0  # failed events of a batch are stored at its end, or after this long
DEFAULT_METRICS_HOST = "127.0.0.1"
LAG_INTERVAL = 1.0  # seconds between two lag readings (only with a metrics endpoint)
READY_PROBE_INTERVAL = 1.0  # /ready asks the database at most this often


class _Fields(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds fixed fields to every record, keeping the ``extra=`` fields of the call."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class Clock(Protocol):
    def monotonic(self) -> float: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class ConsumerStats:
    """Counters of one consumer run."""

    consumed: int = 0  # messages taken from Kafka
    handled: int = 0  # the handler succeeded
    failed: int = 0  # failed for good (retries exhausted, PermanentError, undecodable)
    stored: int = 0  # new DLQ entries
    linked: int = 0  # replayed events that failed again: a new attempt on their entry
    already_stored: int = 0  # failed again after a re-delivery: the entry was there already
    retries: int = 0  # handler calls after the first
    store_retries: int = 0  # DLQ writes that failed (database down) and were retried
    assignments: int = 0  # rebalances that gave this consumer partitions

    def minus(self, other: ConsumerStats) -> ConsumerStats:
        return ConsumerStats(
            **{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)}
        )

    def copy(self) -> ConsumerStats:
        return ConsumerStats(**{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass
class _Pending:
    """A failed event whose DLQ entry is not stored yet."""

    tp: TopicPartitionKey
    generation: int  # the assignment of ``tp`` it was taken under
    offset: int
    entry: FailedEvent
    attempts: int
    since: float  # when it failed (clock.monotonic)


def _tp(message: Any) -> TopicPartitionKey:
    return (message.topic(), message.partition())


class DlqConsumer:
    """Consumes ``topics`` in group ``group_id`` (default: the consumer name), calling
    ``handler(event)`` with each decoded JSON value; failures go to the DLQ table.

    Settings (database URL, Kafka properties, retry backoff, commit interval) come from
    ``settings``, else from the environment and config file as for the CLI
    (``DLQCTL_DATABASE_URL``, ``DLQCTL_KAFKA_BOOTSTRAP_SERVERS``, ...); the keyword
    arguments override them.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        consumer: str,
        topics: Sequence[str],
        group_id: str | None = None,
        settings: Settings | None = None,
        database_url: str | None = None,
        bootstrap_servers: str | None = None,
        kafka_config: Mapping[str, Any] | None = None,
        retry_backoff: Sequence[float] | None = None,
        retries: int | None = None,
        auto_offset_reset: str | None = None,
        commit_interval: float | None = None,
        stats_interval: float = DEFAULT_STATS_INTERVAL,
        batch_size: int = DEFAULT_BATCH_SIZE,
        writer: DlqWriter | None = None,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
        metrics_port: int | None = None,
        metrics_host: str = DEFAULT_METRICS_HOST,
    ) -> None:
        try:
            self.name = check_consumer_name(consumer)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not topics:
            raise ConfigError("at least one topic is needed")
        if settings is None:
            from dlqctl.core.settings import load_settings

            settings = load_settings().settings
        self.topics = list(topics)
        self.group_id = group_id or consumer
        # Awaits what async handlers return, on one event loop of this consumer's.
        self._handler = HandlerCaller(handler)
        backoff = settings.consumer_retry_backoff if retry_backoff is None else retry_backoff
        try:
            self._delays = handler_backoff(backoff, retries)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._commit_interval = (
            settings.consumer_commit_interval if commit_interval is None else commit_interval
        )
        self._stats_interval = stats_interval
        self._batch_size = batch_size
        self._config = self._consumer_config(
            settings, bootstrap_servers, kafka_config, auto_offset_reset
        )
        max_poll_ms = int(self._config.get("max.poll.interval.ms", DEFAULT_MAX_POLL_INTERVAL_MS))
        # A slow handler must not keep us from polling for longer than max.poll.interval.ms.
        self._keepalive_interval = max(max_poll_ms / 1000 / 3, 0.1)
        self._writer = writer or DlqWriter(settings.dsn if database_url is None else database_url)
        self._clock = clock or SystemClock()
        # Every line carries the consumer's name as a field (for --log-format json).
        self._log = _Fields(logger or LOGGER, {"consumer": self.name})
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise ConfigError("the metrics port must be between 0 and 65535 (0: any free port)")
        self._metrics_port = metrics_port
        self._metrics_host = metrics_host
        self._scrub = settings.scrubber()

        self.stats = ConsumerStats()
        self._stop_requested = False
        self._ran = False
        self._kafka: Any = None
        self._tracker = OffsetTracker()
        # Per assigned partition, the assignment it is in: a number that is new each time
        # the partition is assigned. Work taken under an older one is stale (see _current).
        self._generations: dict[TopicPartitionKey, int] = {}
        self._generation_numbers = itertools.count(1)
        self._queue: deque[Any] = deque()
        self._pending: list[_Pending] = []
        self._paused = False
        self._fatal: str | None = None
        # Operations (see docs/consumer.md, "Metrics and readiness").
        self._ops: OperationsServer | None = None
        self._store_failure: str | None = None  # why DLQ writes fail, while they do
        self._last_store = self._last_lag = 0.0
        self._lag: dict[TopicPartitionKey, int] = {}
        self._probe_writer: DlqWriter | None = None
        self._probe_lock = threading.Lock()
        self._probe: tuple[float, bool, str] | None = None
        self._last_poll = 0.0
        self._last_commit = 0.0
        self._last_stats = 0.0
        self._stats_at_last_line = ConsumerStats()

    def _consumer_config(
        self,
        settings: Settings,
        bootstrap_servers: str | None,
        kafka_config: Mapping[str, Any] | None,
        auto_offset_reset: str | None,
    ) -> dict[str, Any]:
        base: dict[str, Any] = dict(settings.consumer_config())
        if bootstrap_servers:
            base["bootstrap.servers"] = bootstrap_servers
        base.update(kafka_config or {})
        base.setdefault("auto.offset.reset", "earliest")  # a new group starts at the beginning
        if auto_offset_reset is not None:
            base["auto.offset.reset"] = auto_offset_reset
        # The guarantees rest on these; no setting may turn them back on.
        forced = {
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "error_cb": self._on_error,
        }
        return client_config(base, forced)

    # -- public -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the consumer to stop: it finishes the current event, stores what failed,
        commits and closes. Safe to call from a signal handler or another thread."""
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def run(self) -> ConsumerStats:
        """Consume until :meth:`stop`; returns the counters of the run."""
        from confluent_kafka import Consumer, KafkaException

        if self._ran:
            raise RuntimeError("a DlqConsumer runs once; create a new one to run again")
        if self._handler.is_async and _loop_running():
            raise ConfigError(
                "DlqConsumer.run() blocks and runs the async handler on an event loop of its"
                " own: call it from a thread (e.g. asyncio.to_thread), not inside a running"
                " event loop"
            )
        self._ran = True
        now = self._clock.monotonic()
        self._last_poll = self._last_commit = self._last_stats = now
        self._last_store = now  # "seconds since the last store" counts from start-up
        self._start_operations()  # first: a port in use fails before anything else starts
        try:
            self._kafka = Consumer(self._config)
        except (KafkaException, ValueError, TypeError) as exc:
            self._stop_operations()
            raise ConfigError(f"invalid Kafka consumer configuration: {exc}") from None
        try:
            self._check_database()
            self._kafka.subscribe(
                self.topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._log.info(
                "consumer %s: consuming %s in group %s",
                self.name,
                ", ".join(self.topics),
                self.group_id,
            )
            while not self._stop_requested:
                if not self._queue:
                    self._poll(POLL_TIMEOUT)
                self._process_queue()
                self._store_pending()
                self._tick()
        finally:
            self._shutdown()
        return self.stats

    @property
    def metrics_url(self) -> str | None:
        """Where ``/metrics`` and ``/ready`` are served while it runs (None: not served)."""
        return self._ops.url if self._ops is not None else None

    # -- operations: metrics and readiness --------------------------------------------

    def _start_operations(self) -> None:
        if self._metrics_port is None:
            return
        from dlqctl.kafka.metrics import OperationsServer, consumer_registry

        self._probe_writer = self._writer.for_health_checks()
        registry = consumer_registry(self.snapshot)
        self._ops = OperationsServer(
            registry, self.readiness, self._metrics_host, self._metrics_port
        ).start()
        self._log.info(
            "consumer %s: serving metrics on %s/metrics and readiness on %s/ready",
            self.name,
            self._ops.url,
            self._ops.url,
            extra={"consumer": self.name, "metrics_url": f"{self._ops.url}/metrics"},
        )

    def _stop_operations(self) -> None:
        if self._ops is not None:
            self._ops.stop()
        if self._probe_writer is not None:
            with self._probe_lock:
                self._probe_writer.close()

    def snapshot(self) -> ConsumerSnapshot:
        """The counters and gauges of the metrics endpoint, now (any thread may ask)."""
        from dlqctl.kafka.metrics import ConsumerSnapshot

        s = self.stats
        assigned = len(self._generations)
        now = self._clock.monotonic()
        return ConsumerSnapshot(
            consumer=self.name,
            consumed=s.consumed,
            handled=s.handled,
            failed=s.failed,
            stored=s.stored,
            already_stored=s.already_stored,
            linked=s.linked,
            retries=s.retries,
            store_retries=s.store_retries,
            partitions_assigned=assigned,
            partitions_paused=assigned if self._paused else 0,
            waiting=len(self._pending),
            seconds_since_last_store=max(0.0, now - self._last_store),
            store_failing=self._store_failure is not None,
            lag=dict(self._lag),
        )

    def readiness(self) -> tuple[bool, str]:
        """(ready, one line why): ready while failed events can be stored. Not ready while
        DLQ writes fail (the partitions are paused for it) or the database is unreachable."""
        failure = self._store_failure
        if failure is not None:
            return False, self._scrub(
                f"not ready: cannot store failed events in the DLQ ({failure});"
                f" {len(self._generations)} partition(s) paused until the database is back"
            )
        with self._probe_lock:
            now = time.monotonic()
            if self._probe is None or now - self._probe[0] >= READY_PROBE_INTERVAL:
                ok, reason = self._probe_database()
                self._probe = (time.monotonic(), ok, reason)
            _, ok, reason = self._probe
        return ok, self._scrub(reason)

    def _probe_database(self) -> tuple[bool, str]:
        writer = self._probe_writer or self._writer
        try:
            writer.check_schema()
        except DatabaseError as exc:
            return False, f"not ready: {one_line(exc.message)}"
        return True, f"ready: consumer {self.name}, group {self.group_id}; the DLQ can be written"

    def _update_lag(self) -> None:
        """Per assigned partition: the high watermark of the last fetch minus the next offset
        to take (nothing for a partition not fetched yet)."""
        from confluent_kafka import KafkaException, TopicPartition

        lag: dict[TopicPartitionKey, int] = {}
        for tp in list(self._generations):
            try:
                _low, high = self._kafka.get_watermark_offsets(TopicPartition(*tp), cached=True)
                following = self._tracker.next_offset(tp)
                if following is None:
                    following = self._kafka.position([TopicPartition(*tp)])[0].offset
            except (KafkaException, RuntimeError):
                continue
            if high >= 0 and following is not None and following >= 0:
                lag[tp] = max(0, high - following)
        self._lag = lag

    # -- the loop -----------------------------------------------------------------------

    def _check_database(self) -> None:
        """Fail fast on a schema that is not migrated; a database that is down is waited
        for later (when the first failed event has to be stored)."""
        try:
            self._writer.check_schema()
        except DatabaseUnavailable as exc:
            self._log.warning(
                "consumer %s: the database is unreachable (%s); starting anyway, failed events"
                " wait until it is back",
                self.name,
                exc.message,
            )

    def _poll(self, timeout: float) -> None:
        """Queue what is there; if nothing is, wait up to ``timeout`` for the first message
        (``consume`` with a batch size waits for the whole batch, which adds latency)."""
        kafka = self._kafka
        messages = kafka.consume(self._batch_size, 0)
        if not messages and timeout > 0:
            messages = kafka.consume(1, timeout)
            if messages:
                messages += kafka.consume(self._batch_size - 1, 0)
        self._last_poll = self._clock.monotonic()
        if self._fatal is not None:
            raise KafkaError(f"consumer {self.name}: fatal Kafka error: {self._fatal}")
        if messages:
            self._queue.extend(messages)
        if self._paused:
            # Partitions assigned during this poll are not paused yet.
            self._kafka.pause(self._kafka.assignment())

    def _process_queue(self) -> None:
        tracker, generations, handler = self._tracker, self._generations, self._handler
        queue, stats, clock = self._queue, self.stats, self._clock
        while queue and not self._stop_requested:
            if self._pending and (
                len(self._pending) >= self._batch_size
                or clock.monotonic() - self._pending[0].since > PENDING_MAX_AGE
            ):
                # Bounds memory when a whole stream fails, and how long a failure waits
                # to be stored when slow handlers or retries stretch out a batch.
                self._store_pending()
            if clock.monotonic() - self._last_poll > self._keepalive_interval:
                self._wait(0)
            message = queue.popleft()
            if message.error() is not None:
                self._on_message_error(message.error())
                continue
            tp = (message.topic(), message.partition())
            generation = generations.get(tp)
            if generation is None:
                continue  # revoked since it was fetched; its new owner reads it
            stats.consumed += 1
            raw = message.value()
            try:
                event = decode_event(raw)
            except (ValueError, RecursionError) as exc:
                self._failed(message, tp, generation, MISSING, None, exc, 1)
                continue
            try:
                handler(event)
            except Exception as exc:
                self._retry(message, tp, generation, event, raw, exc)
                continue
            stats.handled += 1
            tracker.finished(tp, message.offset())

    def _current(self, tp: TopicPartitionKey, generation: int) -> bool:
        """Whether ``tp`` is still in the assignment that work on it was taken under.

        A partition revoked and assigned again while one of its events waited (a retry
        wait polls Kafka, and a rebalance runs inside a poll) is read again from its
        committed offset: the old work must not reach the fresh tracker, where it would let
        the commit pass earlier failed events whose entries were dropped with the revoke.
        """
        return self._generations.get(tp) == generation

    def _retry(
        self,
        message: Any,
        tp: TopicPartitionKey,
        generation: int,
        event: Any,
        raw: bytes,
        error: Exception,
    ) -> None:
        outcome = retry_after_failure(self._handler, event, error, self._delays, self._wait)
        self.stats.retries += outcome.attempts - 1
        if not self._current(tp, generation):
            return  # revoked while we retried: whoever owns it now reads it again
        if outcome.interrupted:
            # Stopping: never finished, so never committed; read again after a restart.
            self._tracker.opened(tp, message.offset())
            return
        if outcome.error is None:
            self.stats.handled += 1
            self._tracker.finished(tp, message.offset())
            return
        self._failed(
            message, tp, generation, event, raw.decode("utf-8"), outcome.error, outcome.attempts
        )

    def _failed(
        self,
        message: Any,
        tp: TopicPartitionKey,
        generation: int,
        event: Any,
        payload: str | None,
        error: BaseException,
        attempts: int,
    ) -> None:
        entry = failed_event(self.name, event, error, message, payload=payload)
        self.stats.failed += 1
        self._tracker.opened(tp, message.offset())
        since = self._clock.monotonic()
        self._pending.append(_Pending(tp, generation, message.offset(), entry, attempts, since))

    def _store_pending(self) -> None:
        """Store the failed events; while the database is down, wait for it (paused)."""
        if not self._pending:
            return
        outage = False

        def on_failure(attempt: int, delay: float, exc: Exception) -> None:
            nonlocal outage
            outage = True
            message = one_line(exc.message if isinstance(exc, DatabaseError) else str(exc))
            self.stats.store_retries += 1
            self._store_failure = message
            self._log.warning(
                "consumer %s: cannot store %d failed event(s) in the DLQ (attempt %d): %s;"
                " partitions paused, retrying in %.1fs",
                self.name,
                len(self._pending),
                attempt,
                message,
                delay,
                extra={
                    "consumer": self.name,
                    "waiting": len(self._pending),
                    "attempt": attempt,
                    "error": message,
                    "retry_in": delay,
                },
            )

        done, _ = retry_until_done(
            self._write_pending, self._wait_paused, on_failure, (DatabaseError,)
        )
        if done:
            self._store_failure = None
        if self._paused:
            self._resume()
        if outage and done:
            self._log.info("consumer %s: the database is back; resuming", self.name)
        elif not done and self._pending:
            self._log.warning(
                "consumer %s: stopping with %d failed event(s) not stored; they are not"
                " committed and will be read again",
                self.name,
                len(self._pending),
            )

    def _write_pending(self) -> None:
        # Re-read on every attempt: a rebalance during the wait may have taken some away.
        batch = list(self._pending)
        if not batch:
            return
        stored = self._writer.write_many([p.entry for p in batch])
        self._last_store = self._clock.monotonic()
        self._pending = self._pending[len(batch) :]
        for pending, result in zip(batch, stored, strict=True):
            if self._current(pending.tp, pending.generation):
                self._tracker.close(pending.tp, pending.offset)
            self._log_stored(pending, result)

    def _log_stored(self, pending: _Pending, result: StoredEntry) -> None:
        entry = result.event
        if result.linked:
            replay = f"replay {result.attempt}"
            if not result.created:
                self.stats.already_stored += 1
                kind, outcome = "already_stored", f"already recorded on DLQ entry {result.dlq_id}"
            else:
                self.stats.linked += 1
                again = "back to pending" if result.reopened else "it stays discarded"
                kind = "linked"
                outcome = f"failed again after {replay} of DLQ entry {result.dlq_id}: {again}"
        elif result.created:
            self.stats.stored += 1
            kind, outcome = "stored", f"stored in the DLQ as {result.dlq_id}"
        else:
            self.stats.already_stored += 1
            kind, outcome = "already_stored", f"already in the DLQ as {result.dlq_id}"
        tries = f"after {pending.attempts} attempts" if pending.attempts > 1 else "at once"
        error = one_line(entry.error_message)
        self._log.warning(
            "consumer %s: event %s from %s failed %s: %s; %s",
            self.name,
            entry.event_id,
            entry.source,
            tries,
            error,
            outcome,
            extra={
                "event_id": str(entry.event_id),
                "topic": entry.source_topic,
                "partition": entry.source_partition,
                "offset": entry.source_offset,
                "attempts": pending.attempts,
                "error": error,
                "dlq_id": str(result.dlq_id),
                "outcome": kind,
            },
        )

    # -- waiting while polling ----------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds`` with the partitions paused, polling so the group keeps us;
        False when a stop was requested."""
        was_paused = self._paused
        ok = self._wait_paused(seconds)
        if not was_paused:
            self._resume()
        return ok

    def _wait_paused(self, seconds: float) -> bool:
        if not self._paused:
            self._kafka.pause(self._kafka.assignment())
            self._paused = True
        deadline = self._clock.monotonic() + seconds
        while True:
            # Nothing arrives from paused partitions; messages of partitions assigned
            # meanwhile are queued behind the ones we hold.
            remaining = deadline - self._clock.monotonic()
            self._poll(max(0.0, min(remaining, POLL_TIMEOUT)))
            self._tick()  # what is finished gets committed during a long wait too
            if self._stop_requested:
                return False
            if remaining <= 0 or self._clock.monotonic() >= deadline:
                return True

    def _resume(self) -> None:
        # Fetching resumes right after the last message handed to us.
        self._kafka.resume(self._kafka.assignment())
        self._paused = False

    # -- commits, stats, shutdown -------------------------------------------------------

    def _tick(self) -> None:
        now = self._clock.monotonic()
        if now - self._last_commit >= self._commit_interval:
            self._commit(asynchronous=True)
            self._last_commit = now
        if now - self._last_stats >= self._stats_interval:
            self._log_stats(now - self._last_stats)
            self._last_stats = now
        if self._ops is not None and now - self._last_lag >= LAG_INTERVAL:
            self._update_lag()
            self._last_lag = now

    def _commit(
        self,
        *,
        asynchronous: bool,
        partitions: Iterable[TopicPartitionKey] | None = None,
        force: bool = False,
    ) -> None:
        """Commit the positions of assigned partitions that moved (``force``: all of them)."""
        from confluent_kafka import KafkaException, TopicPartition

        assigned = self._generations.keys()
        chosen = set(assigned) if partitions is None else set(partitions) & assigned
        if force:
            positions = {tp: p for tp in chosen if (p := self._tracker.position(tp)) is not None}
        else:
            positions = self._tracker.committable(chosen)
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self._kafka.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            # Not fatal: a later commit covers these positions; at worst events are re-read.
            self._log.warning("consumer %s: commit failed: %s", self.name, exc)
            return
        self._tracker.mark_committed(positions)

    def _log_stats(self, seconds: float) -> None:
        delta = self.stats.minus(self._stats_at_last_line)
        self._stats_at_last_line = self.stats.copy()
        self._log.info(
            "consumer %s: last %.0fs: consumed %d, handled %d, stored in the DLQ %d"
            " (%d already there), failed again after a replay %d; waiting to be stored %d",
            self.name,
            seconds,
            delta.consumed,
            delta.handled,
            delta.stored,
            delta.already_stored,
            delta.linked,
            len(self._pending),
            extra={"seconds": round(seconds, 3), **asdict(delta), "waiting": len(self._pending)},
        )

    def _shutdown(self) -> None:
        from confluent_kafka import KafkaException

        try:
            if self._kafka is not None:
                try:
                    self._commit(asynchronous=False, force=True)
                finally:
                    self._kafka.close()
        except (KafkaException, RuntimeError) as exc:
            self._log.warning("consumer %s: closing the consumer failed: %s", self.name, exc)
        finally:
            self._kafka = None
            self._handler.close()
            self._writer.close()
            self._stop_operations()
            s = self.stats
            self._log.info(
                "consumer %s: stopped: consumed %d, handled %d, stored in the DLQ %d"
                " (%d already there), failed again after a replay %d",
                self.name,
                s.consumed,
                s.handled,
                s.stored,
                s.already_stored,
                s.linked,
                extra=asdict(s),
            )

    # -- librdkafka callbacks -----------------------------------------------------------

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        for tp in tps:
            # A partition is assigned afresh (eager rebalancing revokes everything first):
            # nothing taken before belongs to this assignment.
            self._generations[tp] = next(self._generation_numbers)
            self._tracker.forget([tp])
        self.stats.assignments += 1
        self._log.info("consumer %s: assigned %s", self.name, _describe(tps))

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        # What is finished so far is committed while we still own the partitions.
        self._commit(asynchronous=False, partitions=tps, force=True)
        self._drop(tps)
        self._log.info("consumer %s: revoked %s", self.name, _describe(tps))

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        self._drop(tps)
        self._log.warning("consumer %s: lost %s", self.name, _describe(tps))

    def _drop(self, tps: set[TopicPartitionKey]) -> None:
        """Forget partitions that are no longer ours: their new owner reads from the
        committed offset, which never passes an event that is not finished."""
        for tp in tps:
            self._generations.pop(tp, None)
        self._tracker.forget(tps)
        self._pending = [p for p in self._pending if p.tp not in tps]
        if self._queue:
            # In place: the processing loop holds a reference to this deque.
            kept = [m for m in self._queue if m.error() is not None or _tp(m) not in tps]
            self._queue.clear()
            self._queue.extend(kept)

    def _on_error(self, error: Any) -> None:
        if error.fatal():
            self._fatal = str(error)
        self._log.warning("consumer %s: Kafka: %s", self.name, error)

    def _on_message_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError as RdKafkaError

        if error.code() == RdKafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaError(f"consumer {self.name}: fatal Kafka error: {error}")
        self._log.warning("consumer %s: Kafka: %s", self.name, error)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _describe(tps: Iterable[TopicPartitionKey]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(tps)) or "nothing"
