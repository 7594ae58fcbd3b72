"""`dlqctl demo`: the whole loop on embedded services, with no setup.

An embedded PostgreSQL and a tansu broker start on free loopback ports; the embedded
consumer runs a small "orders projector" over generated order events of which some fail in
three ways; the operator's view (stats, a page, one entry) is shown; a canary replay of one
error group stops after a few entries because the handler still fails them; the handler is
fixed, the same canary replay passes and the rest of the group follows; the final counts are
shown. Everything started is
stopped again, also on Ctrl-C — unless ``keep`` leaves it running for exploring.

The narration and rendering belong to the caller (the CLI): this module only reports
through a :class:`DemoNarrator`.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import shlex
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from dlqctl.core.canary import Canary
from dlqctl.core.errors import DlqctlError, KafkaError, MissingExtra, UsageError
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import DlqEntry, DlqStats, EntryPage, Status
from dlqctl.core.replay import ReplayReport, ReplayRequest
from dlqctl.core.runs import SilentListener
from dlqctl.core.settings import Settings
from dlqctl.embedded.demo_state import DemoState, KeptProcess
from dlqctl.embedded.process import EmbeddedServiceError

DEMO_CONSUMER = "orders-projector"
DEMO_TOPIC = "orders"
DEMO_PARTITIONS = 3
EVENT_COUNT = 1000
FIXED_GROUP = "unknown currency"
CANARY_SIZE = 3
CANARY_WAIT = timedelta(seconds=30)
KNOWN_CURRENCIES = ("EUR", "USD", "GBP", "CHF")
# Quick client settings: a short group session (tansu holds a join for half of it) and no
# retry backoff, so the demo finishes in seconds.
QUICK_CONSUMER_CONFIG = {"session.timeout.ms": "3000", "heartbeat.interval.ms": "500"}
WAIT_SECONDS = 60

log = logging.getLogger(__name__)


class DemoNarrator(Protocol):
    """How the demo shows what it does (the CLI renders; tests can record)."""

    def step(self, text: str) -> None: ...
    def stats(self, stats: DlqStats) -> None: ...
    def page(self, page: EntryPage) -> None: ...
    def entry(self, entry: DlqEntry) -> None: ...
    def replayed(self, report: ReplayReport) -> None: ...
    def progress(self, text: str) -> None: ...


class _ReplayProgress(SilentListener):
    """A replay's progress lines (the canary's phases), narrated."""

    def __init__(self, narrator: DemoNarrator) -> None:
        self.narrator = narrator

    def note(self, message: str) -> None:
        self.narrator.progress(message)


@dataclass
class OrderProjector:
    """The demo service's handler: it projects orders, and has two bugs until ``fixed``.

    Orders in a currency it does not know fail (the fix adds it); orders without a
    customer fail for good (bad data; they stay in the DLQ to be discarded).
    """

    fixed: bool = False
    handled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, event: Any) -> None:
        if not isinstance(event, dict) or "order_id" not in event:
            raise ValueError("not an order event")
        if "customer_id" not in event:
            raise KeyError("customer_id")
        currency = event.get("currency")
        if currency not in KNOWN_CURRENCIES and not (self.fixed and currency == "XBT"):
            raise ValueError(f"unknown currency {currency!r} in order {event['order_id']}")
        with self._lock:
            self.handled += 1


def generate_events(count: int = EVENT_COUNT, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """(key, value) order events: about 6 % in an unknown currency, 4 % without a
    customer, 1 % not JSON at all (a truncated write); the same every run."""
    rng = random.Random(seed)
    events = []
    for n in range(1, count + 1):
        order: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": "OrderPlaced",
            "order_id": 10_000 + n,
            "customer_id": f"C-{rng.randrange(1, 400):04d}",
            "currency": rng.choice(KNOWN_CURRENCIES),
            "amount": round(rng.uniform(5, 500), 2),
        }
        roll = rng.random()
        if roll < 0.06:
            order["currency"] = "XBT"
        elif roll < 0.10:
            del order["customer_id"]
        value = json.dumps(order).encode()
        if 0.10 <= roll < 0.11:
            value = value[: len(value) // 2]  # cut off mid-write: not JSON
        events.append((f"order-{order['order_id']}".encode(), value))
    return events


@dataclass
class DemoResult:
    """What the demo leaves behind for its caller."""

    replay: ReplayReport | None = None
    exports: list[str] = field(default_factory=list)


def demo_settings(database_url: str, bootstrap_servers: str) -> Settings:
    return Settings(
        database_url=database_url,  # type: ignore[arg-type]
        kafka_bootstrap_servers=bootstrap_servers,
        kafka_consumer_config=QUICK_CONSUMER_CONFIG,
        consumer_retry_backoff=(),
        consumer_commit_interval=1.0,
        topic_map={DEMO_CONSUMER: DEMO_TOPIC},
        kafka_delivery_timeout=15,
        actor="dlqctl-demo",
    )


def export_lines(settings: Settings, *, database_url: str) -> list[str]:
    """Shell lines that point dlqctl (and a DlqConsumer) in another shell at the services;
    ``database_url`` carries no password (it names a passfile), so none is printed."""
    values = {
        "DLQCTL_DATABASE_URL": database_url,
        "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "DLQCTL_KAFKA_CONSUMER_CONFIG": json.dumps(QUICK_CONSUMER_CONFIG),
        "DLQCTL_CONSUMER_RETRY_BACKOFF": "[]",
        "DLQCTL_TOPIC_MAP": json.dumps(dict(settings.topic_map)),
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


def _require_extras() -> None:
    """The embedded servers come with the [demo] extra; say how to get them."""
    from dlqctl.embedded.postgres import embedded_bindir
    from dlqctl.embedded.tansu import tansu_binary

    try:
        embedded_bindir()
        tansu_binary()
    except EmbeddedServiceError as exc:
        raise MissingExtra(str(exc)) from None


@contextmanager
def _services(keep: bool) -> Iterator[tuple[Any, Any]]:
    """Start the embedded servers; stop them on the way out unless ``keep`` (and success)."""
    from dlqctl.embedded.postgres import EmbeddedPostgres
    from dlqctl.embedded.tansu import EmbeddedBroker

    # A password, so that other local users cannot use a kept server as its superuser.
    postgres = EmbeddedPostgres(die_with_parent=not keep, password=secrets.token_urlsafe(18))
    broker = EmbeddedBroker(die_with_parent=not keep)
    kept = False
    try:
        postgres.start()
        broker.start()
        yield postgres, broker
        kept = keep
    except EmbeddedServiceError as exc:
        raise DlqctlError(f"could not start the embedded services: {exc}") from None
    finally:
        if not kept:
            broker.stop()
            postgres.stop()


def _wait_for(condition: Callable[[], bool], what: str, failed: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if failed():
            raise DlqctlError(f"the demo consumer stopped before {what}")
        if time.monotonic() > deadline:
            raise DlqctlError(f"the demo timed out after {WAIT_SECONDS}s waiting for {what}")
        time.sleep(0.05)


def run_demo(narrator: DemoNarrator, *, keep: bool = False) -> DemoResult:
    """Run the whole loop; with ``keep``, leave the services running and record them."""
    from dlqctl.core.ids import parse_id
    from dlqctl.db.migrations import migrate
    from dlqctl.kafka.consumer import DlqConsumer
    from dlqctl.kafka.topics import create_topic, publish
    from dlqctl.usecases.inspect import compute_stats, list_page, show_entry
    from dlqctl.usecases.replay import replay

    _require_extras()
    if keep and DemoState.load() is not None:
        raise UsageError("a kept demo is still running: stop it first with `dlqctl demo --stop`")
    result = DemoResult()
    narrator.step("Starting an embedded PostgreSQL and a Kafka-protocol broker (tansu)…")
    with _services(keep) as (postgres, broker):
        settings = demo_settings(postgres.dsn, broker.bootstrap_servers)
        migrate(settings.dsn)
        create_topic(broker.bootstrap_servers, DEMO_TOPIC, DEMO_PARTITIONS, timeout=30)
        events = generate_events()
        if publish(broker.bootstrap_servers, DEMO_TOPIC, events, timeout=30):
            raise KafkaError("the demo broker did not take the generated events within 30 s")
        narrator.step(
            f"Produced {len(events)} order events to topic {DEMO_TOPIC!r}. The service"
            f" {DEMO_CONSUMER!r} consumes them with the embedded consumer; events it fails"
            " on land in the dlq table."
        )
        projector = OrderProjector()
        quiet = logging.getLogger("dlqctl.demo.consumer")
        quiet.setLevel(logging.ERROR)  # one line per failed event would drown the story
        consumer = DlqConsumer(
            projector,
            consumer=DEMO_CONSUMER,
            topics=[DEMO_TOPIC],
            settings=settings,
            logger=quiet,
        )
        thread = threading.Thread(target=consumer.run, name="demo-consumer", daemon=True)
        thread.start()
        try:
            stats = consumer.stats
            _wait_for(
                lambda: stats.handled + stats.stored + stats.already_stored >= len(events),
                "every event was handled or stored",
                lambda: not thread.is_alive(),
            )
            narrator.step(
                f"The service handled {stats.handled} events and stored {stats.stored} failed"
                " ones in the DLQ. What the on-call engineer sees:"
            )
            narrator.step("$ dlqctl stats")
            narrator.stats(compute_stats(settings, EntryFilter()))
            narrator.step("$ dlqctl list --limit 8")
            narrator.page(list_page(settings, EntryFilter(), limit=8))
            fixed_group = EntryFilter(error=FIXED_GROUP, statuses=(Status.PENDING,))
            sample = list_page(settings, fixed_group, limit=1).entries
            if sample:
                dlq_id = str(sample[0].dlq_id)
                narrator.step(f"$ dlqctl show {dlq_id}")
                narrator.entry(show_entry(settings, parse_id(dlq_id)))
            canary = Canary(CANARY_SIZE, DEMO_CONSUMER, CANARY_WAIT, "30s")
            command = (
                f"`dlqctl replay --error '{FIXED_GROUP}' --canary {CANARY_SIZE}"
                f" --canary-group {DEMO_CONSUMER} --yes`"
            )
            narrator.step(
                f"A fix is on its way, but is it deployed yet? Replaying the {FIXED_GROUP!r}"
                f" group behind a canary: {command} sends the oldest {CANARY_SIZE}, waits"
                " until the service's group has processed them, and sends the rest only if"
                " none of them failed again."
            )
            request = ReplayRequest(fixed_group, batch_size=500, canary=canary)
            stopped = replay(settings, request, listener=_ReplayProgress(narrator))
            narrator.replayed(stopped)
            narrator.step(
                f"The canary failed again: the service is still broken. Nothing more was sent;"
                f" the {len(stopped.canary.refailed) if stopped.canary else 0} canary entries"
                " are pending again, their new failure recorded as an attempt (`dlqctl show`)."
            )
            projector.fixed = True
            handled_before = projector.handled
            narrator.step(
                f"The fix lands (the projector now knows XBT). The same command again: {command}"
            )
            report = replay(settings, request, listener=_ReplayProgress(narrator))
            result.replay = report
            narrator.replayed(report)
            _wait_for(
                lambda: projector.handled - handled_before >= report.result.succeeded,
                "the replayed events were handled",
                lambda: not thread.is_alive(),
            )
            narrator.step(
                f"The canary passed and the rest followed: the service handled all"
                f" {report.result.succeeded} replayed events. Final counts (the other groups"
                " stay pending to explore):"
            )
            narrator.step("$ dlqctl stats")
            narrator.stats(compute_stats(settings, EntryFilter()))
        finally:
            consumer.stop()
            thread.join(30)
        if keep:
            kept_url = postgres.url_with_passfile()
            _record_kept(postgres, broker, settings, kept_url)
            result.exports = export_lines(settings, database_url=kept_url)
    return result


def _record_kept(postgres: Any, broker: Any, settings: Settings, database_url: str) -> None:
    """Write the state file `dlqctl demo --stop` reads."""
    processes = (
        KeptProcess.of("postgres", postgres.process.pid, signal.SIGINT, postgres.base_dir),
        KeptProcess.of("tansu", broker.process.pid, signal.SIGTERM, broker.base_dir),
    )
    exports = {
        "DLQCTL_DATABASE_URL": database_url,
        "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
    }
    DemoState(processes=processes, exports=exports).save()


def stop_kept_demo() -> bool:
    """Stop what `demo --keep` left running; False when nothing was kept."""
    state = DemoState.load()
    if state is None:
        return False
    for process in state.processes:
        process.stop()
    DemoState.clear()
    return True
