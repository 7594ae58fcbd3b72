"""Running the embedded consumer in tests: in a thread, with short settings."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from dlqctl.core.settings import Settings
from dlqctl.kafka.consumer import ConsumerStats, DlqConsumer
from tests.kafka_helpers import read_topic, unique_name


class RunningConsumer:
    """A DlqConsumer running in a thread until the test leaves the ``with`` block."""

    def __init__(self, consumer: DlqConsumer) -> None:
        self.consumer = consumer
        self.error: BaseException | None = None
        self.result: ConsumerStats | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.consumer.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> RunningConsumer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> ConsumerStats:
        self.consumer.stop()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the consumer did not stop within 60s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                raise AssertionError("the consumer stopped on its own")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
            time.sleep(0.05)

    def wait_assigned(self, timeout: float = 60) -> None:
        self.wait_for(lambda: self.consumer.stats.assignments > 0, timeout, "an assignment")


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "n": n, **fields}


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001: none), without joining the group."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        result = reader.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return {tp.partition: tp.offset for tp in result}
    finally:
        reader.close()


def end_offsets(bootstrap: str, topic: str, count: int) -> dict[int, int]:
    """Per partition, the offset after its last message (tansu's watermarks are not reliable:
    read the ``count`` messages instead)."""
    ends: dict[int, int] = {}
    for message in read_topic(bootstrap, topic, count):
        ends[message.partition] = max(ends.get(message.partition, 0), message.offset + 1)
    return ends


def make_consumer(
    handler: Callable[[Any], object],
    settings: Settings,
    topic: str,
    *,
    consumer: str = "orders-projector",
    group: str | None = None,
    **kwargs: Any,
) -> DlqConsumer:
    return DlqConsumer(
        handler,
        consumer=consumer,
        topics=[topic],
        group_id=group or unique_name("g"),
        settings=settings,
        **kwargs,
    )
