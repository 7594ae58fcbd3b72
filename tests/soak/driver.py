"""The chaos soak: dlqctl's consumer, replays, discards and purges all at once, against a
PostgreSQL and a tansu broker that the soak kills and restarts (see docs/operations.md).

Real processes throughout: the soak's own embedded PostgreSQL and tansu, the real
``dlqctl consume`` child with ``tests/soak/handler.py``, and ``dlqctl replay|discard|purge``
children. In-process threads produce events (unique event ids), read every message back (the
witness), and sample the consumer group's committed offsets. The main thread injects the
faults: tansu SIGKILLed and restarted, PostgreSQL restarted (fast shutdown, and SIGKILL), a
replay SIGKILLed mid-run. At the end production stops, the consumer catches up, everything
stops cleanly and ``invariants.evaluate`` checks the record.

A tansu restart is a brand-new empty cluster (memory storage): its offsets start at 0 again,
while a commit the consumer sent to the old cluster can still land in the new one and then
point past messages it never read. A real broker keeps its log, so the soak keeps offsets
meaningful: before anything else may produce after a restart it fills every partition of
the input topic with handled-at-once filler events up to beyond the old end offsets. No
offset of the input topic ever names two real messages.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from dlqctl.db.migrations import migrate
from dlqctl.embedded.postgres import EmbeddedPostgres
from dlqctl.embedded.process import EmbeddedServiceError
from dlqctl.embedded.tansu import EmbeddedBroker
from tests.cli_helpers import process_env
from tests.soak.invariants import (
    Attempt,
    BrokerKill,
    Check,
    EntryRow,
    HandlerCall,
    PgOutage,
    ProcessLeft,
    Produced,
    Record,
    Sample,
    StatusChange,
    Witnessed,
    evaluate,
)

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = "soak-projector"
INPUT = "soak.orders"
SINK = "soak.sink"
PARTITIONS = 4  # what tansu gives a topic it creates on first use
MARKER = "SOAK_RUN"  # on every process the soak starts, to find any left behind
QUIET = {"log_level": 0}  # librdkafka's connection-refused lines, while a server is down
DELIVERY_TIMEOUT = 8  # replay's DLQCTL_KAFKA_DELIVERY_TIMEOUT (see invariants.SINGLE_MARK_GRACE)
PAD_MARGIN = 500  # filler offsets beyond the old end (messages acknowledged during the kill)
GUARD = 180.0  # the generous limit of every wait
FILLER = json.dumps({"kind": "filler"}).encode()  # handled at once, not logged


@dataclass
class SoakConfig:
    """How long and how hard; the defaults are the short soak of ``make test``."""

    workdir: Path
    seconds: float = 40.0  # the chaos phase (then the catch-up)
    event_rate: float = 25.0  # events produced per second
    fault_every: float = 8.0  # seconds between two faults
    replay_rate: float = 60.0  # --rate of the replay runs
    pg_down: float = 2.0  # seconds PostgreSQL stays down
    broker_down: float = 1.0  # seconds tansu stays down (at least)
    seed: int = 11
    pg_bindir: Path | None = None
    say: Callable[[str], None] = print

    @classmethod
    def from_env(cls, workdir: Path, **overrides: Any) -> SoakConfig:
        """SOAK_SECONDS, SOAK_RATE, SOAK_FAULT_EVERY, SOAK_SEED override the defaults."""
        env = {
            "seconds": ("SOAK_SECONDS", float),
            "event_rate": ("SOAK_RATE", float),
            "fault_every": ("SOAK_FAULT_EVERY", float),
            "seed": ("SOAK_SEED", int),
        }
        values: dict[str, Any] = {}
        for name, (var, kind) in env.items():
            if os.environ.get(var):
                values[name] = kind(os.environ[var])
        bindir = os.environ.get("DLQCTL_TEST_PG_BINDIR")
        if bindir:
            values["pg_bindir"] = Path(bindir)
        return cls(workdir=workdir, **{**values, **overrides})


def kind_of(n: int) -> str:
    """The deterministic share: 1 in 10 always fails, 2 in 10 fail until their fix."""
    return {0: "fail", 3: "until-A", 6: "until-B"}.get(n % 10, "ok")


@dataclass
class Run:
    """One dlqctl write command run by the soak."""

    kind: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float
    app_name: str
    ended: float | None = None
    exit_code: int | None = None
    killed: bool = False  # SIGKILLed by the soak on purpose


@dataclass
class Report:
    checks: list[Check]
    lines: list[str]
    figures: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def text(self) -> str:
        return "\n".join(self.lines)


class SoakError(RuntimeError):
    """The soak itself could not run (a server did not come back, a thread died)."""


@dataclass
class _State:
    """What the threads share (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    epoch: int = 0
    epoch_started: list[float] = field(default_factory=list)
    produced: list[Produced] = field(default_factory=list)
    produce_failed: int = 0
    max_acked: dict[tuple[int, int], int] = field(default_factory=dict)  # (epoch, p) -> offset
    witnessed: list[Witnessed] = field(default_factory=list)
    at_offset: dict[tuple[int, int, int], Witnessed] = field(default_factory=dict)  # (e, p, o)
    ends_by_epoch: dict[tuple[int, int], int] = field(default_factory=dict)  # input topic
    seen_end: dict[tuple[str, int], int] = field(default_factory=dict)  # this epoch
    offset_reuse: int = 0
    witness_errors: int = 0
    fixes: dict[str, float] = field(default_factory=dict)
    thread_errors: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.work = config.workdir
        self.work.mkdir(parents=True, exist_ok=True)
        self.fix_dir = self.work / "fixes"
        self.fix_dir.mkdir(exist_ok=True)
        self.handler_log = self.work / "handler.log"
        self.handler_log.write_text("")
        self.marker = uuid.uuid4().hex
        self.rng = random.Random(config.seed)
        self.s = _State()
        self.pg: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.consumer: subprocess.Popen[bytes] | None = None
        self.consumer_exit: int | None = None
        self.runs: list[Run] = []
        self.run_numbers = itertools.count()
        self.kills: list[BrokerKill] = []
        self.outages: list[PgOutage] = []
        self.faults: Counter[str] = Counter()
        self.samples: list[Sample] = []
        self.skipped: Counter[str] = Counter()
        self.pads: list[int] = []
        self.threads: list[threading.Thread] = []
        # Gates: replays and the producer only run while the broker is up and padded.
        self.broker_ready = threading.Event()
        self.producer_paused = threading.Event()
        self.producer_outstanding = 0
        self.stop_producer = threading.Event()
        self.stop_ops = threading.Event()
        self.stop_sampler = threading.Event()
        self.stop_witness = threading.Event()
        self.started_at = 0.0

    # -- the run ----------------------------------------------------------------------

    def run(self) -> Report:
        previous = os.environ.get(MARKER)
        os.environ[MARKER] = self.marker  # inherited by every server and child
        try:
            try:
                self._start()
                self._chaos()
                record = self._finish()
            finally:
                self._teardown()
            record.processes_left = self._processes_left()
            return self._report(record)
        finally:
            if previous is None:
                os.environ.pop(MARKER, None)
            else:
                os.environ[MARKER] = previous

    def _start(self) -> None:
        say = self.config.say
        self.started_at = time.time()
        # Its own temporary directory: as root the server runs as nobody, who cannot enter
        # the work directory.
        self.pg = EmbeddedPostgres(bindir=self.config.pg_bindir, fast_unsafe=False).start()
        with psycopg.connect(self.pg.dsn, autocommit=True) as conn:
            # Durable commits (a SIGKILL must not lose a committed entry); no fsync (the OS
            # does not crash here).
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("ALTER SYSTEM SET full_page_writes = off")
            conn.execute("SELECT pg_reload_conf()")
            row = conn.execute("SHOW server_version").fetchone()
            self.pg_version = str(row[0]) if row else "?"
        migrate(self.pg.dsn)
        with psycopg.connect(self.pg.dsn, autocommit=True) as conn:
            conn.execute((Path(__file__).parent / "instrument.sql").read_text())
            conn.execute(
                "CREATE INDEX ON soak_dlq_log (source_partition, source_offset) WHERE op = 'insert'"
            )
        self.broker = EmbeddedBroker(base_dir=self._fresh_dir("tansu")).start()
        self._create_topics()
        self.s.epoch_started.append(time.time())
        self.broker_ready.set()
        say(
            f"soak: PostgreSQL {self.pg_version} on {self.pg.port}, tansu on"
            f" {self.broker.bootstrap_servers}, {self.config.seconds:g}s of chaos,"
            f" seed {self.config.seed}, workdir {self.work}"
        )
        self._start_consumer()
        for name, target in (
            ("witness", self._witness_loop),
            ("producer", self._producer_loop),
            ("sampler", self._sampler_loop),
            ("ops", self._ops_loop),
        ):
            thread = threading.Thread(target=self._guarded(name, target), name=f"soak-{name}")
            thread.start()
            self.threads.append(thread)

    def _fresh_dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _guarded(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # reported, and fails the soak
                with self.s.lock:
                    self.s.thread_errors.append(f"{name}: {type(exc).__name__}: {exc}")

        return run

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap_servers

    @property
    def dsn(self) -> str:
        assert self.pg is not None
        return self.pg.dsn

    def _create_topics(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, **QUIET})
        futures = admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (INPUT, SINK)])
        for topic, future in futures.items():
            try:
                future.result(30)
            except Exception as exc:
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(
                    exc
                ):
                    raise SoakError(f"cannot create {topic}: {exc}") from exc
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            metadata = admin.list_topics(timeout=5)
            if all(
                t in metadata.topics and len(metadata.topics[t].partitions) == PARTITIONS
                for t in (INPUT, SINK)
            ):
                return
            time.sleep(0.05)
        raise SoakError("the soak's topics have no leaders after 30s")

    # -- the consumer -----------------------------------------------------------------

    def _dlqctl_env(self, **extra: str) -> dict[str, str]:
        return process_env(
            {
                "DLQCTL_DATABASE_URL": self.dsn,
                "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "DLQCTL_ACTOR": "soak",
                MARKER: self.marker,
                **extra,
            }
        )

    def _start_consumer(self) -> None:
        env = self._dlqctl_env(
            DLQCTL_KAFKA_CONSUMER_CONFIG=json.dumps(
                {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}
            ),
            DLQCTL_CONSUMER_COMMIT_INTERVAL="1",
            DLQCTL_CONSUMER_RETRY_BACKOFF="[0]",
            SOAK_HANDLER_LOG=str(self.handler_log),
            SOAK_FIX_DIR=str(self.fix_dir),
        )
        argv = [
            sys.executable,
            "-m",
            "dlqctl",
            "consume",
            "--consumer",
            CONSUMER,
            "--topic",
            INPUT,
            "--handler",
            "tests.soak.handler:handle",
            "--retries",
            "1",
        ]
        with open(self.work / "consume.stderr", "wb") as err:
            self.consumer = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err
            )

    def _consumer_alive(self) -> None:
        assert self.consumer is not None
        if self.consumer.poll() is not None:
            raise SoakError(
                f"dlqctl consume died with exit code {self.consumer.returncode}: "
                + self._tail(self.work / "consume.stderr")
            )

    @staticmethod
    def _tail(path: Path, lines: int = 15) -> str:
        try:
            return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"

    # -- the producer of events -------------------------------------------------------

    def _producer_loop(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                # No retries, no idempotence: a message is on the topic once or not at all
                # (an idempotent producer wedges after a tansu restart).
                "enable.idempotence": False,
                "retries": 0,
                "message.timeout.ms": 3000,
                "linger.ms": 5,
                **QUIET,
            }
        )
        interval = 1.0 / self.config.event_rate
        next_at = time.monotonic()
        for n in itertools.count():
            while True:
                producer.poll(0)
                self.producer_outstanding = len(producer)
                if self.stop_producer.is_set():
                    producer.flush(15)
                    self.producer_outstanding = len(producer)
                    return
                now = time.monotonic()
                if self.producer_paused.is_set():
                    producer.poll(0.02)
                    next_at = now
                    continue
                if now >= next_at:
                    break
                producer.poll(min(0.05, next_at - now))
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            kind = kind_of(n)
            event_id = str(uuid.uuid4())
            value = json.dumps(
                {"event_id": event_id, "n": n, "kind": kind, "order": {"lines": n % 7 + 1}}
            ).encode()
            while True:
                try:
                    producer.produce(
                        INPUT,
                        key=event_id.encode(),
                        value=value,
                        on_delivery=partial(self._delivered, event_id, n, kind),
                    )
                    break
                except BufferError:
                    producer.poll(0.05)

    def _delivered(self, event_id: str, n: int, kind: str, err: Any, msg: Any) -> None:
        with self.s.lock:
            if err is not None:
                self.s.produce_failed += 1
                return
            epoch = self.s.epoch
            self.s.produced.append(
                Produced(event_id, n, kind, epoch, msg.partition(), msg.offset(), time.time())
            )
            key = (epoch, msg.partition())
            self.s.max_acked[key] = max(self.s.max_acked.get(key, -1), msg.offset())

    # -- the witness: every message of both topics, read back -------------------------

    def _witness_loop(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"soak-witness-{self.marker[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
                **QUIET,
            }
        )
        partitions = [
            TopicPartition(t, p, OFFSET_BEGINNING) for t in (INPUT, SINK) for p in range(PARTITIONS)
        ]
        epoch = self.s.epoch
        consumer.assign(partitions)
        try:
            while not self.stop_witness.is_set():
                if self.s.epoch != epoch:
                    # A new cluster: read it from its beginning.
                    with self.s.lock:
                        epoch = self.s.epoch
                        self.s.seen_end = {}
                    consumer.unassign()
                    consumer.assign(
                        [
                            TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)
                            for tp in partitions
                        ]
                    )
                for msg in consumer.consume(1000, 0.2):
                    if msg.error() is not None:
                        with self.s.lock:
                            self.s.witness_errors += 1
                        continue
                    self._witness(msg, epoch)
        finally:
            consumer.close()

    def _witness(self, msg: Any, epoch: int) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        headers = dict(msg.headers() or [])
        try:
            value = json.loads(msg.value()) if msg.value() is not None else {}
        except ValueError:
            value = {}
        kind = value.get("kind") if isinstance(value, dict) else None
        with self.s.lock:
            end = self.s.seen_end.get((topic, partition), 0)
            self.s.seen_end[(topic, partition)] = max(end, offset + 1)
            if topic == INPUT:
                end = self.s.ends_by_epoch.get((epoch, partition), 0)
                self.s.ends_by_epoch[(epoch, partition)] = max(end, offset + 1)
            if kind == "filler":
                return
            dlq_id = headers.get("dlq-id")
            retry = headers.get("dlq-retry-count")
            seen = Witnessed(
                epoch=epoch,
                topic=topic,
                partition=partition,
                offset=offset,
                event_id=value.get("event_id") if isinstance(value, dict) else None,
                kind=kind,
                dlq_id=dlq_id.decode() if dlq_id else None,
                retry_count=int(retry) if retry else None,
                at=time.time(),
            )
            self.s.witnessed.append(seen)
            if topic == INPUT:
                key = (epoch, partition, offset)
                if key not in self.s.at_offset and any(
                    (e, partition, offset) in self.s.at_offset for e in range(epoch)
                ):
                    self.s.offset_reuse += 1
                self.s.at_offset[key] = seen

    def _witness_caught_up(self, ends: dict[tuple[str, int], int]) -> bool:
        with self.s.lock:
            return all(self.s.seen_end.get(tp, 0) >= end for tp, end in ends.items())

    def _barrier(self, topics: tuple[str, ...] = (INPUT, SINK)) -> dict[tuple[str, int], int]:
        """Append one filler to every partition; the offset after it, per partition.

        Everything acknowledged before lies below it. (tansu's ListOffsets answers the base
        offset of the last batch + 1, so high watermarks cannot tell where a log ends.)
        """
        ends: dict[tuple[str, int], int] = {}
        errors: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                ends[(msg.topic(), msg.partition())] = msg.offset() + 1

        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", **QUIET})
        for topic in topics:
            for p in range(PARTITIONS):
                producer.produce(topic, value=FILLER, partition=p, on_delivery=delivered)
        if producer.flush(30) != 0 or errors:
            raise SoakError(f"the barrier messages were not delivered: {errors}")
        return ends

    # -- sampling committed offsets ---------------------------------------------------

    def _sampler_loop(self) -> None:
        """Read the group's committed offsets about once a second; ``check_commits`` judges
        them at the end against when each failure was stored (the triggers' timestamps), so
        a sample taken while PostgreSQL is down counts too."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap, **QUIET})
        while not self.stop_sampler.wait(1.0):
            self._sample(admin)
        self._sample(admin)  # after the catch-up: everything is committed by now

    def _sample(self, admin: AdminClient) -> None:
        epoch = self.s.epoch
        if not self.broker_ready.is_set():
            self.skipped["broker restarting"] += 1
            return
        request = ConsumerGroupTopicPartitions(
            CONSUMER, [TopicPartition(INPUT, p) for p in range(PARTITIONS)]
        )
        try:
            result = admin.list_consumer_group_offsets([request])[CONSUMER].result(10)
        except Exception:
            self.skipped["offsets not readable"] += 1
            return
        at = time.time()  # every commit the answer shows happened before this
        if self.s.epoch != epoch or not self.broker_ready.is_set():
            self.skipped["broker restarting"] += 1
            return
        committed = {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}
        self.samples.append(Sample(at, epoch, committed))

    # -- dlqctl write commands --------------------------------------------------------

    def _command(self, kind: str) -> list[str]:
        """The dlqctl command line of each kind of run."""
        rate = str(self.config.replay_rate)
        replay = ["replay", "-c", CONSUMER, "--yes", "-o", "json"]
        commands = {
            # Into the consumer's input topic (the topic each entry came from): failures
            # link back, fixed ones are handled.
            "replay": [*replay, "--rate", rate, "--limit", "60", "--batch-size", "20"],
            # Batches of one cannot straddle a broker kill: their marks come right after
            # the acknowledgement (see invariants.at_risk).
            "replay-one": [*replay, "--rate", rate, "--limit", "40", "--batch-size", "1"],
            # Into a topic nobody consumes but the witness.
            "replay-sink": [
                *replay,
                *("--error", "soak until-B", "--topic", SINK, "--rate", rate),
                *("--limit", "30", "--batch-size", "1"),
            ],
            # Killed mid-run by the chaos; publishing while the broker is killed.
            "replay-slow": [*replay, "--rate", "4", "--batch-size", "8", "--limit", "200"],
            "replay-one-slow": [*replay, "--rate", "5", "--batch-size", "1", "--limit", "100"],
            "discard": [
                *("discard", "-c", CONSUMER, "--error", "soak fail event", "--until", "12s"),
                *("--reason", "soak: permanent failure", "--yes", "-o", "json"),
            ],
            "purge": ["purge", "--older-than", "8s", "--batch-size", "50", "--yes", "-o", "json"],
        }
        return commands[kind]

    def _launch(self, kind: str) -> Run:
        n = next(self.run_numbers)  # the ops thread and the chaos both launch runs
        out, err = self.work / f"run-{n:04d}-{kind}.out", self.work / f"run-{n:04d}-{kind}.err"
        argv = [sys.executable, "-m", "dlqctl", *self._command(kind)]
        app_name = f"soak-{kind}-{n}"  # its sessions in pg_stat_activity, its marks' actor
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self._dlqctl_env(
                    DLQCTL_KAFKA_DELIVERY_TIMEOUT=str(DELIVERY_TIMEOUT),
                    PGAPPNAME=app_name,
                    DLQCTL_ACTOR=app_name,
                ),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        run = Run(kind, argv[3:], proc, out, err, time.time(), app_name)
        with self.s.lock:
            self.runs.append(run)
        return run

    def _running(self, kinds: tuple[str, ...] | None = None) -> list[Run]:
        with self.s.lock:
            runs = list(self.runs)
        alive = []
        for run in runs:
            if run.exit_code is None:
                code = run.proc.poll()
                if code is not None:
                    run.exit_code, run.ended = code, time.time()
                    continue
                if kinds is None or run.kind.split("-")[0] in kinds:
                    alive.append(run)
        return alive

    def _ops_loop(self) -> None:
        cycle = itertools.cycle(
            ["replay", "purge", "replay-one", "discard", "replay", "replay-sink", "replay-one"]
        )
        action = next(cycle)
        while not self.stop_ops.wait(0.5):
            running = self._running()
            if len(running) >= 3:
                continue
            replays_held = not self.broker_ready.is_set() or len(self._running(("replay",))) >= 2
            if action.startswith("replay") and replays_held:
                continue
            self._launch(action)
            action = next(cycle)
        self._wait_runs(GUARD)

    def _wait_runs(self, guard: float, kinds: tuple[str, ...] | None = None) -> None:
        deadline = time.monotonic() + guard
        while self._running(kinds):
            if time.monotonic() > deadline:
                for run in self._running(kinds):
                    run.killed = True
                    run.proc.kill()
                    run.proc.wait(10)
                self.faults["runs SIGKILLed after the guard"] += 1
                break
            time.sleep(0.1)
        self._running()

    # -- chaos ------------------------------------------------------------------------

    def _chaos(self) -> None:
        cfg, say = self.config, self.config.say
        start = time.monotonic()
        faults = itertools.cycle(["pg-fast", "broker", "replay-kill", "pg-kill"])
        events: list[tuple[float, str]] = [
            (cfg.fault_every * (i + 0.5), next(faults))
            for i in range(max(4, int(cfg.seconds / cfg.fault_every)))
            if cfg.fault_every * (i + 0.5) < cfg.seconds or i < 4
        ]
        events += [(cfg.seconds * 0.35, "fix until-A"), (cfg.seconds * 0.7, "fix until-B")]
        events.sort()
        for at, what in events:
            while time.monotonic() - start < at:
                self._consumer_alive()
                self._thread_errors()
                time.sleep(0.2)
            say(f"soak: {time.monotonic() - start:6.1f}s {what}")
            if what.startswith("fix "):
                self._fix(what.split()[1])
            elif what == "pg-fast":
                self._restart_pg(kill=False)
            elif what == "pg-kill":
                self._restart_pg(kill=True)
            elif what == "broker":
                self._restart_broker()
            else:
                self._kill_replay()
        while time.monotonic() - start < cfg.seconds:
            self._consumer_alive()
            time.sleep(0.2)

    def _thread_errors(self) -> None:
        with self.s.lock:
            errors = list(self.s.thread_errors)
        if errors:
            raise SoakError("; ".join(errors))

    def _fix(self, kind: str) -> None:
        with self.s.lock:
            self.s.fixes[kind] = time.time()  # before the file exists: calls before it failed
        (self.fix_dir / kind).touch()

    def _restart_pg(self, *, kill: bool) -> None:
        assert self.pg is not None and self.pg.process is not None
        down = time.time()
        if kill:
            self.pg.process.kill()
            self.pg.process.wait(30)
            # Its backends notice and exit; a new postmaster refuses to start before.
            self._wait_no_process("postgres", GUARD)
        else:
            self.pg.stop_server()
        time.sleep(self.config.pg_down)
        for attempt in itertools.count():
            try:
                self.pg.start_server()
                break
            except EmbeddedServiceError:
                if attempt >= 20:
                    raise
                time.sleep(1.0)
        self.outages.append(PgOutage("kill" if kill else "fast", down, time.time()))
        self.faults["PostgreSQL SIGKILL" if kill else "PostgreSQL fast shutdown"] += 1

    def _launch_mid_run(self, kind: str) -> Run:
        """Launch a slow replay and return once it holds a claimed batch (its transaction
        has locked rows), with some pending entries to claim first."""
        deadline = time.monotonic() + 60
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM dlq WHERE status = 'pending'").fetchone()
                if row and row[0] >= 10:
                    break
                time.sleep(0.2)
            run = self._launch(kind)
            while run.proc.poll() is None and time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = %s AND backend_xid IS NOT NULL",
                    (run.app_name,),
                ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.05)
        return run

    def _kill_replay(self) -> None:
        """SIGKILL a slow replay in the middle of a claimed batch."""
        if not self.broker_ready.wait(GUARD):
            raise SoakError("the broker did not come back")
        run = self._launch_mid_run("replay-slow")
        time.sleep(1.0 + self.rng.random())  # --rate 4: a few of the batch are published
        if run.proc.poll() is None:
            run.killed = True
            run.proc.kill()
            run.proc.wait(10)
            self.faults["replay SIGKILL mid-run"] += 1
        else:
            self.faults["replay to kill had already ended"] += 1

    def _restart_broker(self) -> None:
        """SIGKILL tansu while a replay publishes, and start an empty one on the same port."""
        assert self.broker is not None
        publishing = self._launch_mid_run("replay-one-slow")
        time.sleep(0.5)
        ends = self._barrier()
        caught_up_at: float | None = time.time()
        deadline = time.monotonic() + 10
        while not self._witness_caught_up(ends):
            if time.monotonic() > deadline:
                caught_up_at = None
                break
            time.sleep(0.02)
        self.broker_ready.clear()
        killed_at = time.time()
        self.broker.kill()
        self.producer_paused.set()
        # Replays running now end within their delivery timeout (their idempotent producer
        # cannot deliver to a new cluster); the producer's queued messages time out.
        self._wait_runs(GUARD, ("replay",))
        deadline = time.monotonic() + GUARD
        while self.producer_outstanding and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.s.lock:
            old = self.s.epoch
            old_end = max(
                [e for (t, _p), e in ends.items() if t == INPUT]
                + [e + 1 for (t, _p), e in self.s.seen_end.items() if t == INPUT]
                + [o + 1 for (e, _p), o in self.s.max_acked.items() if e == old]
                + [0]
            )
            self.s.epoch += 1
        time.sleep(self.config.broker_down)
        self.broker.start()
        restarted_at = time.time()
        self._create_topics()
        self._pad(old_end + PAD_MARGIN)
        with self.s.lock:
            self.s.epoch_started.append(time.time())
        self.kills.append(
            BrokerKill(old, caught_up_at, killed_at, restarted_at, self.s.epoch_started[old])
        )
        self.faults["tansu SIGKILL + restart"] += 1
        if publishing.ended is not None and publishing.ended > killed_at:
            self.faults["tansu SIGKILL while a replay was publishing"] += 1
        if caught_up_at is None:
            self.faults["witness behind at a broker kill"] += 1
        self.producer_paused.clear()
        self.broker_ready.set()

    def _pad(self, target: int) -> None:
        """Fill every partition of the input topic up to ``target`` (see the module doc)."""
        last: dict[int, int] = {}
        errors: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

        producer = Producer(
            {"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 20, **QUIET}
        )
        for p in range(PARTITIONS):
            for _ in range(target):
                while True:
                    try:
                        producer.produce(INPUT, value=FILLER, partition=p, on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.05)
        if producer.flush(GUARD) != 0 or errors:
            raise SoakError(f"the filler messages were not all delivered: {errors[:3]}")
        if len(last) < PARTITIONS or min(last.values()) + 1 < target:
            raise SoakError(f"padding reached {last}, not {target}")
        self.pads.append(target)

    # -- the end ----------------------------------------------------------------------

    def _finish(self) -> Record:
        say = self.config.say
        finish_start = time.monotonic()
        self.stop_producer.set()
        self.stop_ops.set()
        self._join("producer", "ops")
        self._thread_errors()
        # The consumer catches up: committed == end of every partition.
        deadline = time.monotonic() + GUARD
        admin = AdminClient({"bootstrap.servers": self.bootstrap, **QUIET})
        ends = self._barrier()
        while True:
            self._consumer_alive()
            request = ConsumerGroupTopicPartitions(
                CONSUMER, [TopicPartition(INPUT, p) for p in range(PARTITIONS)]
            )
            result = admin.list_consumer_group_offsets([request])[CONSUMER].result(10)
            committed = {tp.partition: tp.offset for tp in result.topic_partitions}
            behind = {
                p: (committed.get(p), ends[(INPUT, p)])
                for p in range(PARTITIONS)
                if ends[(INPUT, p)] > 0 and committed.get(p, -1) < ends[(INPUT, p)]
            }
            if not behind and self._witness_caught_up(ends):
                break
            if time.monotonic() > deadline:
                raise SoakError(f"the consumer did not catch up in {GUARD:g}s: {behind}")
            time.sleep(0.5)
        witness_ok = self._witness_caught_up(ends)
        self.stop_sampler.set()
        self._join("sampler")
        say(f"soak: caught up in {time.monotonic() - finish_start:.1f}s; stopping")
        assert self.consumer is not None
        self.consumer.send_signal(signal.SIGTERM)
        try:
            self.consumer_exit = self.consumer.wait(60)
        except subprocess.TimeoutExpired:
            self.consumer.kill()
            self.consumer_exit = self.consumer.wait(10)
        self.stop_witness.set()
        self._join("witness")
        self._thread_errors()
        entries, changes, attempts = self._read_tables()
        with self.s.lock:
            return Record(
                consumer=CONSUMER,
                input_topic=INPUT,
                final_epoch=self.s.epoch,
                produced=list(self.s.produced),
                calls=self._handler_calls(),
                witnessed=list(self.s.witnessed),
                kills=list(self.kills),
                outages=list(self.outages),
                entries=entries,
                changes=changes,
                samples=list(self.samples),
                attempts=attempts,
                fixes=dict(self.s.fixes),
                witness_ends=dict(self.s.ends_by_epoch),
                processes_left=[],
                consumer_exit=self.consumer_exit,
                samples_skipped=self.skipped,
                witness_final_ok=witness_ok,
                single_batches={
                    r.app_name for r in self.runs if "--batch-size 1" in " ".join(r.argv)
                },
            )

    def _join(self, *names: str) -> None:
        for thread in self.threads:
            if thread.name.removeprefix("soak-") in names:
                thread.join(GUARD)
                if thread.is_alive():
                    raise SoakError(f"thread {thread.name} did not stop in {GUARD:g}s")

    def _handler_calls(self) -> list[HandlerCall]:
        calls = []
        for line in self.handler_log.read_text().splitlines():
            at, event_id, outcome = line.split()
            calls.append(HandlerCall(float(at), event_id, outcome == "ok"))
        return calls

    def _read_tables(self) -> tuple[list[EntryRow], list[StatusChange], list[Attempt]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            log = conn.execute(
                "SELECT op, dlq_id::text, consumer, event_id::text, source_topic,"
                " source_partition, source_offset, event_headers, old_status, new_status,"
                " new_retry_count, extract(epoch FROM at)::float8, changed_by"
                " FROM soak_dlq_log ORDER BY id"
            ).fetchall()
            status_now = dict(conn.execute("SELECT dlq_id::text, status FROM dlq").fetchall())
            attempts = [
                Attempt(*row)
                for row in conn.execute(
                    "SELECT dlq_id::text, source_topic, source_partition, source_offset,"
                    " extract(epoch FROM failed_at)::float8 FROM dlq_attempts"
                    " UNION ALL"
                    " SELECT dlq_id::text, source_topic, source_partition, source_offset,"
                    " extract(epoch FROM failed_at)::float8 FROM soak_attempts_deleted"
                )
            ]
        inserted: dict[str, dict[str, Any]] = {}
        deleted: dict[str, tuple[float, str]] = {}
        changes: list[StatusChange] = []
        for row in log:
            op, dlq_id, consumer, event_id, topic, part, offset, headers, old, new, retry = row[:11]
            at, by = row[11:]
            if op == "insert":
                header = _headers(headers)
                inserted[dlq_id] = {
                    "dlq_id": dlq_id,
                    "consumer": consumer,
                    "event_id": event_id,
                    "source_topic": topic,
                    "source_partition": part,
                    "source_offset": offset,
                    "replayed_from": header.get("dlq-id"),
                    "replayed_consumer": header.get("dlq-consumer"),
                    "inserted_at": at,
                }
            elif op == "delete":
                deleted[dlq_id] = (at, old)
            else:
                changes.append(StatusChange(dlq_id, old, new, retry, at, by))
        entries = [
            EntryRow(
                **row,
                deleted_at=deleted[i][0] if i in deleted else None,
                status_when_deleted=deleted[i][1] if i in deleted else None,
                status=status_now.get(i),
            )
            for i, row in inserted.items()
        ]
        return entries, changes, attempts

    # -- teardown and leftovers -------------------------------------------------------

    def _teardown(self) -> None:
        """Stop everything the soak started (also after a failure)."""
        for event in (self.stop_producer, self.stop_ops, self.stop_sampler, self.stop_witness):
            event.set()
        self.broker_ready.set()
        if self.consumer is not None and self.consumer.poll() is None:
            self.consumer.send_signal(signal.SIGTERM)
            try:
                self.consumer.wait(60)
            except subprocess.TimeoutExpired:
                self.consumer.kill()
                self.consumer.wait(10)
        for run in self._running():
            run.proc.kill()
            run.proc.wait(10)
        for thread in self.threads:
            thread.join(60)
        if self.broker is not None:
            self.broker.stop()
        if self.pg is not None:
            with contextlib.suppress(OSError):
                (self.work / "postgres.log").write_bytes(self.pg.log_path.read_bytes())
            self.pg.stop()

    def _marked_processes(self) -> dict[int, str]:
        tag = f"{MARKER}={self.marker}".encode()
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if tag not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie is gone (init reaps it)
                cmdline = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
            found[int(entry.name)] = cmdline.strip()
        return found

    def _wait_no_process(self, name: str, guard: float) -> None:
        deadline = time.monotonic() + guard
        while any(name in cmd.split(" ")[0] for cmd in self._marked_processes().values()):
            if time.monotonic() > deadline:
                raise SoakError(f"{name} processes still running after {guard:g}s")
            time.sleep(0.1)

    def _processes_left(self) -> list[ProcessLeft]:
        deadline = time.monotonic() + 30  # backends of a killed postmaster take a moment
        while True:
            left = self._marked_processes()
            if not left or time.monotonic() > deadline:
                return [ProcessLeft(pid, cmd) for pid, cmd in sorted(left.items())]
            time.sleep(0.2)

    # -- the report -------------------------------------------------------------------

    def _report(self, record: Record) -> Report:
        checks = evaluate(record)
        runs = Counter(
            (r.kind.split("-")[0], "SIGKILLed" if r.killed else r.exit_code) for r in self.runs
        )
        anomalies = self._run_anomalies()
        checks.append(
            Check(
                6,
                "every dlqctl run ended with 0 or 1 (1: one 'Error:' line), no traceback",
                {"runs": len(self.runs), "anomalies": len(anomalies)},
                anomalies,
            )
        )
        s = self.s
        duration = time.time() - self.started_at
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        by_kind = Counter(p.kind for p in record.produced)
        figures = {
            "duration_s": round(duration, 1),
            "chaos_s": self.config.seconds,
            "seed": self.config.seed,
            "postgresql": self.pg_version,
            "faults": dict(self.faults),
            "produced_acked": len(record.produced),
            "produce_failed": s.produce_failed,
            "handler_calls": len(record.calls),
            "runs": {f"{k} {v}": n for (k, v), n in sorted(runs.items(), key=str)},
            "paddings": self.pads,
            "checks": {
                c.number: {"title": c.title, "passed": c.passed, **c.counts} for c in checks
            },
        }
        lines = [
            f"chaos soak: {duration:.0f}s in all ({self.config.seconds:g}s of chaos), seed"
            f" {self.config.seed}, PostgreSQL {self.pg_version}, tansu (memory storage)",
            f"faults: {faults}",
            f"events: {len(record.produced)} acknowledged ({_counts(by_kind)}),"
            f" {s.produce_failed} not acknowledged (broker down);"
            f" handler calls {len(record.calls)}; witness read {len(record.witnessed)} messages",
            "dlqctl runs: "
            + ", ".join(f"{k} exit {v}: {n}" for (k, v), n in sorted(runs.items(), key=str)),
            f"broker restarts padded the input partitions to {self.pads} filler offsets",
        ]
        if s.offset_reuse:
            checks.append(
                Check(
                    7,
                    "offsets never name two real messages (soak harness)",
                    {"reused": s.offset_reuse},
                    [f"{s.offset_reuse} offsets of {INPUT} held real messages twice"],
                )
            )
        for check in checks:
            lines += check.lines()
        verdict = "PASSED" if all(c.passed for c in checks) else "FAILED"
        lines.append(f"soak {verdict}")
        return Report(checks, lines, figures)

    def _run_anomalies(self) -> list[str]:
        anomalies = []
        consumer_log = (self.work / "consume.stderr").read_text(errors="replace")
        if "Traceback" in consumer_log or "this is a bug" in consumer_log:
            anomalies.append("dlqctl consume printed a traceback: see consume.stderr")
        for run in self.runs:
            if run.killed:
                continue
            err = run.err.read_text(errors="replace") if run.err.exists() else ""
            lines = [line for line in err.splitlines() if line.strip()]
            what = f"{' '.join(run.argv)} (exit {run.exit_code}, {run.err.name})"
            errors = [line for line in lines if not line.startswith("warning:")]
            if run.exit_code not in (0, 1):
                anomalies.append(f"{what}: {' | '.join(lines[-3:])}")
            elif "Traceback" in err or "this is a bug" in err:
                anomalies.append(f"{what}: traceback: {' | '.join(lines[-3:])}")
            elif run.exit_code == 1 and (len(errors) != 1 or not errors[0].startswith("Error: ")):
                anomalies.append(f"{what}: not one 'Error: ' line: {' | '.join(lines[:3])}")
            elif run.exit_code == 0 and errors:
                anomalies.append(f"{what}: exit 0 with errors: {' | '.join(errors[:3])}")
        return anomalies


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


def _headers(headers: Any) -> dict[str, str]:
    """event_headers ([[key, base64 or null], ...]) as text, the last of a key winning."""
    import base64

    out = {}
    for key, value in headers or []:
        if value is not None:
            with contextlib.suppress(ValueError):
                out[key] = base64.b64decode(value).decode()
    return out
