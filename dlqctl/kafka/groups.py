"""A consumer group's committed offsets, read with the admin API (without joining the group).

A canary replay waits until the group that consumes the replayed topic has committed past
every canary message (see docs/replay.md, "Canary").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from dlqctl.core.canary import TopicPartitionKey
from dlqctl.core.errors import KafkaError, first_line
from dlqctl.core.settings import Settings
from dlqctl.kafka.clients import client_config

log = logging.getLogger(__name__)


class GroupOffsets:
    """Reads one consumer group's committed offsets."""

    def __init__(self, settings: Settings, group: str) -> None:
        base = {**settings.kafka_config}
        if settings.kafka_bootstrap_servers:
            base["bootstrap.servers"] = settings.kafka_bootstrap_servers
        base.setdefault("log_level", "7" if settings.debug else "2")
        self.group = group
        self.timeout = settings.kafka_delivery_timeout
        self._admin = AdminClient(client_config(base))

    def committed(self, partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The group's committed offset of each partition (absent: none committed);
        KafkaError when the cluster does not answer within the delivery timeout."""
        request = ConsumerGroupTopicPartitions(
            self.group, [TopicPartition(topic, partition) for topic, partition in partitions]
        )
        try:
            futures = self._admin.list_consumer_group_offsets([request])
            result = futures[self.group].result(timeout=self.timeout)
        except (KafkaException, TimeoutError) as exc:
            text = first_line(exc)
            if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
                text = str(exc.args[0].str())
            raise KafkaError(
                f"cannot read the committed offsets of consumer group {self.group!r}: {text}"
            ) from None
        offsets: dict[TopicPartitionKey, int] = {}
        for tp in result.topic_partitions or []:
            if tp.error is None and tp.offset >= 0:
                offsets[(tp.topic, tp.partition)] = tp.offset
        return offsets
