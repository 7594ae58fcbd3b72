"""Plain topic creation and publishing, for setting up a cluster (the demo's orders topic).

Not replay's producer (dlqctl.kafka.producer): no delivery tracking per message, only
whether everything was delivered in time.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported
    AdminClient,
    NewTopic,
)

from dlqctl.core.errors import KafkaError, first_line


def create_topic(bootstrap: str, topic: str, partitions: int, *, timeout: float) -> None:
    """Create ``topic`` with ``partitions`` partitions (replication factor 1)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        # Keep ``admin`` referenced until the result is in: a dropped client fails it.
        admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout)
    except (KafkaException, TimeoutError) as exc:
        raise KafkaError(
            f"cannot create topic {topic!r} at {bootstrap}: {first_line(exc)}"
        ) from None


def publish(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]], *, timeout: float
) -> int:
    """Produce (key, value) messages to ``topic``; how many were not delivered in ``timeout``."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    return int(producer.flush(timeout))
