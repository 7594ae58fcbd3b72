"""The producer replay publishes with: acks=all, idempotent, deliveries bounded in time.

Every message gets a delivery report within ``kafka_delivery_timeout`` seconds
(``message.timeout.ms``): acknowledged, or failed with the broker's (or librdkafka's)
reason. Replay marks an entry only after its report said delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    ConfigResource,
    ResourceType,
)

from dlqctl.core.errors import ConfigError, KafkaError, first_line
from dlqctl.core.replay import DEFAULT_MESSAGE_MAX_BYTES, Headers
from dlqctl.core.settings import Settings
from dlqctl.kafka.clients import client_config

log = logging.getLogger(__name__)

# Reports that mean the cluster is not acknowledging at all (as opposed to refusing one
# message): a run stops claiming after a batch that had one.
_UNAVAILABLE = frozenset(
    getattr(RdKafkaError, name)
    for name in (
        "_MSG_TIMED_OUT",
        "_TIMED_OUT",
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "_FATAL",
        "_PURGE_QUEUE",
        "_PURGE_INFLIGHT",
        "_DESTROY",
    )
    if hasattr(RdKafkaError, name)
)
# syslog level 2: librdkafka's critical lines only.
LOG_CRITICAL = 2
# Seconds flush() waits beyond the delivery timeout before calling a report missing.
FLUSH_GRACE = 5.0


def describe(err: Any) -> str:
    """A delivery error as one line: librdkafka's text and the error's name."""
    try:
        return f"{err.str()} ({err.name()})"
    except Exception:
        return str(err)


class Deliveries:
    """Delivery reports of one batch: which messages (by index) failed and why."""

    __slots__ = ("acked", "errors", "unavailable")

    def __init__(self) -> None:
        self.acked: set[int] = set()
        self.errors: dict[int, str] = {}
        self.unavailable = False

    def report(self, index: int, err: Any, _msg: Any) -> None:
        """The delivery callback (bound to a message's index with functools.partial)."""
        if err is None:
            self.acked.add(index)
        else:
            self.fail(index, err)

    def fail(self, index: int, err: Any) -> None:
        """A failed delivery (or a message produce() refused at once)."""
        self.errors[index] = describe(err)
        if _is_unavailable(err):
            self.unavailable = True


class PositionedDeliveries(Deliveries):
    """Delivery reports that also keep where each acknowledged message went (a canary)."""

    __slots__ = ("positions",)

    def __init__(self) -> None:
        super().__init__()
        self.positions: dict[int, tuple[int, int]] = {}  # index -> (partition, offset)

    def report(self, index: int, err: Any, msg: Any) -> None:
        if err is None:
            self.acked.add(index)
            self.positions[index] = (msg.partition(), msg.offset())
        else:
            self.fail(index, err)


def _is_unavailable(err: Any) -> bool:
    try:
        return bool(err.code() in _UNAVAILABLE or err.fatal())
    except AttributeError:
        return False


class ReplayProducer:
    """The Kafka side of replay: preflight checks, producing, flushing."""

    def __init__(self, settings: Settings) -> None:
        self.delivery_timeout = settings.kafka_delivery_timeout
        base = dict(settings.producer_config())
        base.pop("delivery.timeout.ms", None)  # an alias; the setting below decides
        # librdkafka logs every failed connection attempt; the run reports the failure in
        # one line (with the last error), so its own lines only show with --debug.
        base.setdefault("log_level", "7" if settings.debug else str(LOG_CRITICAL))
        overrides: dict[str, Any] = {
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": max(1, int(self.delivery_timeout * 1000)),
        }
        self._config = client_config(base, overrides)
        self.bootstrap_servers = str(self._config["bootstrap.servers"])
        self.max_message_bytes = max_message_bytes(self._config)
        self.last_error: str | None = None
        self.fatal_error: str | None = None
        try:
            self._producer = Producer({**self._config, "error_cb": self._on_error})
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"invalid Kafka producer settings: {_text(exc)}") from None

    def _on_error(self, err: Any) -> None:
        self.last_error = describe(err)
        if err.fatal():
            self.fatal_error = self.last_error
        log.debug("kafka producer error: %s", self.last_error)

    def existing_topics(self) -> set[str]:
        """The cluster's topics; KafkaError when it cannot be reached within the timeout."""
        try:
            metadata = self._producer.list_topics(timeout=self.delivery_timeout)
        except KafkaException as exc:
            raise KafkaError(
                f"cannot reach Kafka at {self.bootstrap_servers} within"
                f" {self.delivery_timeout:g}s: {_text(exc)}"
                f"{'; last error: ' + self.last_error if self.last_error else ''}"
                " (check DLQCTL_KAFKA_BOOTSTRAP_SERVERS and that the brokers are up)"
            ) from None
        return {name for name, topic in metadata.topics.items() if topic.error is None}

    def auto_creates_topics(self) -> bool | None:
        """The brokers' auto.create.topics.enable, or None when they do not say."""
        try:
            admin = AdminClient(dict(self._config))
            brokers = admin.list_topics(timeout=self.delivery_timeout).brokers
            resources = [ConfigResource(ResourceType.BROKER, str(b)) for b in brokers]
            if not resources:
                return None
            values = set()
            for future in admin.describe_configs(resources).values():
                entries = future.result(timeout=self.delivery_timeout)
                entry = entries.get("auto.create.topics.enable")
                if entry is None or entry.value is None:
                    return None
                values.add(str(entry.value).lower() == "true")
        except Exception as exc:  # any failure only means "unknown"
            log.debug("cannot read auto.create.topics.enable: %s", _text(exc))
            return None
        return values == {True} if values else None

    def produce(
        self,
        topic: str,
        key: bytes | str,
        value: bytes | str | None,
        headers: Headers,
        on_delivery: Callable[[Any, Any], None],
    ) -> Any | None:
        """Queue one message; librdkafka's error when it refuses it at once, else None."""
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                )
                return None
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.05)
            except KafkaException as exc:
                return exc.args[0] if exc.args else _text(exc)

    def flush(self) -> int:
        """Wait for every queued message's report (bounded); the number still unreported."""
        return int(self._producer.flush(self.delivery_timeout + FLUSH_GRACE))

    def close(self) -> None:
        """Drop whatever is still queued (its entries were not marked) and release."""
        try:
            if len(self._producer):
                self._producer.purge(in_queue=True, in_flight=True, blocking=False)
            self._producer.flush(1)
        except Exception as exc:  # closing must not hide the run's own outcome
            log.debug("closing the producer: %s", _text(exc))


def _int_property(config: Mapping[str, Any], name: str, default: int) -> int:
    try:
        return int(config.get(name, default))
    except (TypeError, ValueError):
        raise ConfigError(f"Kafka producer property {name} must be a number") from None


def max_message_bytes(config: Mapping[str, Any]) -> int:
    """The producer's message.max.bytes (what replay's size preflight compares with)."""
    return _int_property(config, "message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES)


def _text(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return str(exc.args[0].str())
    return first_line(exc)
