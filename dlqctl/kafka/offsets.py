"""Which offsets may be committed: up to the first event per partition not yet finished.

An event is finished when the handler succeeded or its DLQ entry is stored. Events of one
partition are taken in offset order, so every offset seen that is not open is finished; the
commit position of a partition is its lowest open offset, else the last seen offset + 1.
Pure logic, no Kafka client.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

TopicPartitionKey = tuple[str, int]


@dataclass
class _PartitionState:
    last_seen: int = -1
    open: list[int] = field(default_factory=list)  # ascending: offsets arrive in order
    committed: int = -1  # the position last handed out for commit


class OffsetTracker:
    """Per partition: offsets seen, offsets still open (failed, not stored), commit positions."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, _PartitionState] = {}

    def finished(self, tp: TopicPartitionKey, offset: int) -> None:
        """``offset`` was taken and is finished (handled, or its entry is stored)."""
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _PartitionState()
        if offset > state.last_seen:
            state.last_seen = offset

    def opened(self, tp: TopicPartitionKey, offset: int) -> None:
        """``offset`` was taken and is not finished yet (its entry still has to be stored)."""
        self.finished(tp, offset)
        self._partitions[tp].open.append(offset)

    def close(self, tp: TopicPartitionKey, offset: int) -> None:
        """An open offset is now finished."""
        state = self._partitions.get(tp)
        if state is not None and offset in state.open:
            state.open.remove(offset)

    def position(self, tp: TopicPartitionKey) -> int | None:
        """The offset a commit may name for ``tp`` (the next one to read), None if none yet."""
        state = self._partitions.get(tp)
        if state is None or (state.last_seen < 0 and not state.open):
            return None
        return state.open[0] if state.open else state.last_seen + 1

    def next_offset(self, tp: TopicPartitionKey) -> int | None:
        """The offset after the last one taken from ``tp`` (None before the first)."""
        state = self._partitions.get(tp)
        if state is None or state.last_seen < 0:
            return None
        return state.last_seen + 1

    def committable(
        self, partitions: Iterable[TopicPartitionKey] | None = None
    ) -> dict[TopicPartitionKey, int]:
        """Positions that moved forward since they were last marked committed."""
        chosen = self._partitions if partitions is None else partitions
        result: dict[TopicPartitionKey, int] = {}
        for tp in chosen:
            state = self._partitions.get(tp)
            position = self.position(tp)
            if state is not None and position is not None and position > state.committed:
                result[tp] = position
        return result

    def mark_committed(self, positions: dict[TopicPartitionKey, int]) -> None:
        for tp, position in positions.items():
            state = self._partitions.get(tp)
            if state is not None and position > state.committed:
                state.committed = position

    def forget(self, partitions: Iterable[TopicPartitionKey]) -> None:
        """Drop what is known about partitions no longer assigned to us."""
        for tp in partitions:
            self._partitions.pop(tp, None)

    def open_count(self) -> int:
        return sum(len(s.open) for s in self._partitions.values())
