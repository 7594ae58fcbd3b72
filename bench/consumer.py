"""The embedded consumer next to a raw confluent-kafka loop, measured in the same run.

Both read the same pre-filled topic in a fresh group with the same client settings and the
same commit cadence; the clock runs from the first event to the last one finished (handled,
or stored in the DLQ), so the ~3 s group join on tansu is not counted. Scenarios: every
event healthy (no-op handler), and 10 % failing at once (``--retries 0``), where the raw
loop stores each failure with a plain psycopg INSERT before committing, as a hand-written
service would.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import ResultTable, fmt_ratio, servers
from dlqctl.core.settings import Settings
from dlqctl.db.writer import DlqWriter, StoredEntry
from dlqctl.kafka.consumer import DlqConsumer

PARTITIONS = 3
COMMIT_INTERVAL = 1.0
CLIENT = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}
FAIL_EVERY = 10  # 10 % of the events fail


@dataclass
class Run:
    seconds: float
    events: int
    stored: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=5).topics.get(name)
        if topic and topic.error is None and len(topic.partitions) == PARTITIONS:
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {name} not ready")


def _fill(bootstrap: str, topic: str, count: int, failing: bool) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for n in range(count):
        value = {
            "event_id": str(uuid.uuid4()),
            "type": "OrderPlaced",
            "order_id": n,
            "amount": round(n * 0.37, 2),
            "currency": "EUR",
            "items": [{"sku": f"SKU-{n % 977}", "qty": 1 + n % 5}],
            "fail": failing and n % FAIL_EVERY == 0,
        }
        while True:
            try:
                producer.produce(topic, json.dumps(value).encode(), key=str(n).encode())
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("messages still queued after 60 s")


def _handler(counter: dict[str, Any]) -> Callable[[Any], None]:
    def handle(event: Any) -> None:
        if counter["first"] is None:
            counter["first"] = time.perf_counter()
        counter["calls"] += 1
        if event["fail"]:
            raise ValueError(f"cannot project order {event['order_id']}")

    return handle


def _raw_loop(bootstrap: str, topic: str, count: int, dsn: str | None, name: str = "raw") -> Run:
    """Consume, decode, handle; failures INSERTed one by one (``dsn`` given); commit the
    highest offset per partition every COMMIT_INTERVAL once everything before is done."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **CLIENT,
        }
    )
    conn = psycopg.connect(dsn, autocommit=True) if dsn else None
    counter: dict[str, Any] = {"first": None, "calls": 0}
    handle = _handler(counter)
    positions: dict[tuple[str, int], int] = {}
    done = stored = 0
    consumer.subscribe([topic])
    last_commit = time.monotonic()
    try:
        while done < count:
            # The same fetch pattern as DlqConsumer: take what is there, else wait for one.
            batch = consumer.consume(500, 0)
            if not batch:
                batch = consumer.consume(1, 0.5)
            for msg in batch:
                if msg.error():
                    continue
                raw = msg.value()
                event = json.loads(raw)
                try:
                    handle(event)
                except Exception as exc:
                    if conn is not None:
                        conn.execute(
                            "INSERT INTO dlq (consumer, event_id, event_payload, error_message,"
                            " source_topic, source_partition, source_offset, event_raw)"
                            " VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s)",
                            (
                                name,
                                event["event_id"],
                                raw.decode(),
                                f"ValueError: {exc}",
                                msg.topic(),
                                msg.partition(),
                                msg.offset(),
                                raw,
                            ),
                        )
                        stored += 1
                positions[(msg.topic(), msg.partition())] = msg.offset() + 1
                done += 1
            if time.monotonic() - last_commit >= COMMIT_INTERVAL and positions:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()],
                    asynchronous=True,
                )
                last_commit = time.monotonic()
        finished = time.perf_counter()
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()
        if conn is not None:
            conn.close()
    return Run(finished - counter["first"], count, stored)


class _TimedWriter(DlqWriter):
    """Notes when the last failed event is stored."""

    def __init__(self, dsn: str, expected: int) -> None:
        super().__init__(dsn)
        self.expected = expected
        self.stored = 0
        self.finished: float | None = None

    def write_many(self, entries: Sequence[Any]) -> list[StoredEntry]:
        result = super().write_many(entries)
        self.stored += len(result)
        if self.stored >= self.expected:
            self.finished = time.perf_counter()
        return result


def _dlq_consumer(
    bootstrap: str, topic: str, count: int, dsn: str, failing: int, name: str = "bench"
) -> Run:
    counter: dict[str, Any] = {"first": None, "calls": 0, "last": None}
    handle = _handler(counter)
    writer = _TimedWriter(dsn, failing)
    settings = Settings(
        database_url=dsn,
        kafka_bootstrap_servers=bootstrap,
        kafka_consumer_config=CLIENT,
        consumer_commit_interval=COMMIT_INTERVAL,
    )
    consumer: DlqConsumer

    def counting(event: Any) -> None:
        try:
            handle(event)
        finally:
            if counter["calls"] == count:
                counter["last"] = time.perf_counter()
                consumer.stop()

    consumer = DlqConsumer(
        counting,
        consumer=name,
        topics=[topic],
        group_id=f"dlq-{uuid.uuid4().hex[:8]}",
        settings=settings,
        retries=0,
        writer=writer,
        stats_interval=3600,
    )
    consumer.run()
    if counter["last"] is None or writer.stored < failing:
        raise RuntimeError(f"consumer stopped early: {consumer.stats}")
    finished = max(counter["last"], writer.finished or 0.0)
    return Run(finished - counter["first"], count, writer.stored)


def run(quick: bool) -> tuple[list[ResultTable], dict[str, Any]]:
    # One log line per failed event is part of the work; it goes to /dev/null here.
    log = logging.getLogger("dlqctl")
    sink = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    sink.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(sink)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        return _run(quick)
    finally:
        log.removeHandler(sink)
        log.propagate = True
        sink.stream.close()


def _run(quick: bool) -> tuple[list[ResultTable], dict[str, Any]]:
    count = 10_000 if quick else 100_000
    rounds = 1 if quick else 5
    failing = count // FAIL_EVERY
    results: dict[str, list[Run]] = {}
    with servers() as (pg, kafka):
        assert kafka is not None
        bootstrap = kafka.bootstrap_servers
        healthy_topic, failing_topic = "bench-healthy", "bench-failing"
        for topic, fails in ((healthy_topic, False), (failing_topic, True)):
            _create_topic(bootstrap, topic)
            _fill(bootstrap, topic, count, fails)
        for i in range(rounds):
            # Alternate, so drift on the shared machine hits both sides alike.
            results.setdefault("raw healthy", []).append(
                _raw_loop(bootstrap, healthy_topic, count, None)
            )
            results.setdefault("dlq healthy", []).append(
                _dlq_consumer(bootstrap, healthy_topic, count, pg.dsn, 0)
            )
            results.setdefault("raw failing", []).append(
                _raw_loop(bootstrap, failing_topic, count, pg.dsn, f"raw-{i}")
            )
            results.setdefault("dlq failing", []).append(
                _dlq_consumer(bootstrap, failing_topic, count, pg.dsn, failing, f"bench-{i}")
            )
        with psycopg.connect(pg.dsn) as conn:
            stored = dict(
                conn.execute(
                    "SELECT consumer, count(*) FROM dlq GROUP BY consumer ORDER BY consumer"
                ).fetchall()
            )
    # Each round stores its failures under its own consumer name: every one exactly once.
    expected = {f"{side}-{i}": failing for side in ("bench", "raw") for i in range(rounds)}
    if stored != expected:
        raise RuntimeError(f"expected DLQ entries {expected}, found {stored}")

    def median(name: str) -> Run:
        runs = results[name]
        seconds = statistics.median(r.seconds for r in runs)
        return Run(seconds, runs[0].events, runs[0].stored)

    table = ResultTable(
        title=f"Embedded consumer vs a raw confluent-kafka loop ({count:,} events,"
        f" {PARTITIONS} partitions, median of {rounds})",
        headers=[
            "scenario",
            "raw loop",
            "DlqConsumer",
            "ratio (DlqConsumer / raw)",
            "single rounds (raw; DlqConsumer)",
        ],
    )

    def spread(name: str) -> str:
        rates = sorted(r.rate for r in results[name])
        return f"{rates[0] / 1000:,.0f}k–{rates[-1] / 1000:,.0f}k"

    for label, raw_name, dlq_name in (
        ("healthy, no-op handler", "raw healthy", "dlq healthy"),
        (f"{100 // FAIL_EVERY} % failing, --retries 0", "raw failing", "dlq failing"),
    ):
        raw, dlq = median(raw_name), median(dlq_name)
        table.rows.append(
            [
                label,
                f"{raw.rate:,.0f} events/s",
                f"{dlq.rate:,.0f} events/s",
                fmt_ratio(dlq.rate / raw.rate),
                f"{spread(raw_name)}; {spread(dlq_name)}",
            ]
        )
    table.notes = [
        "Same client settings and commit cadence (every 1 s, asynchronous) on both sides;"
        " timed from the first event to the last one handled or stored.",
        "Raw loop: the same fetch pattern (consume(500, 0), else wait for one), json.loads,"
        " handler, offsets committed in order; with failures it INSERTs each one"
        " (autocommit) before moving on. DlqConsumer: also checks each event for what jsonb"
        " rejects, tracks offsets per partition, logs one line per failed event, and stores"
        f" the failures of each batch in one pipelined transaction ({failing:,} entries per"
        " round, each checked afterwards to be stored exactly once).",
        "Rounds alternate between the two sides, so load from other jobs on the shared"
        " machine hits both alike; compare the ratios, not the absolute rates.",
    ]
    meta = {
        "events": count,
        "rounds": rounds,
        "partitions": PARTITIONS,
        "raw": {k: [round(r.seconds, 3) for r in v] for k, v in results.items()},
    }
    return [table], meta
