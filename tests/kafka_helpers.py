"""Talking to the test broker directly: topics, producing, and reading a topic back."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, name: str | None = None, partitions: int = 1) -> str:
    name = name or unique_name()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1)])
    futures[name].result(30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metadata = admin.list_topics(name, timeout=5)
        topic = metadata.topics.get(name)
        if topic and topic.error is None and len(topic.partitions) == partitions:
            return name
        time.sleep(0.05)
    raise AssertionError(f"topic {name} has no leader after 10s")


def produce(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]] | None]],
    partition: int | None = None,
) -> None:
    """Produce (key, value, headers) messages and wait for every acknowledgement."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value, headers in messages:
        kwargs = {} if partition is None else {"partition": partition}
        producer.produce(
            topic, value=value, key=key, headers=headers, on_delivery=on_delivery, **kwargs
        )
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still queued after 30s"
    assert errors == [], errors


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[Message]:
    """Every message of ``topic`` from the beginning (assign, not subscribe: no group join).

    Waits until ``expected`` messages arrived, then briefly for any extra (a duplicate).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = list(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        extra_deadline: float | None = None
        while time.monotonic() < deadline:
            if len(messages) >= expected:
                extra_deadline = extra_deadline or time.monotonic() + 0.5
                if time.monotonic() > extra_deadline:
                    break
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            messages.append(
                Message(
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    msg.key(),
                    msg.value(),
                    list(msg.headers() or []),
                )
            )
        return messages
    finally:
        consumer.close()
