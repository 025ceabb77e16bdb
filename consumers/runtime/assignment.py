"""The partitions a runner owns, and the last applied offset of each.

The database decides where consumption resumes: on assignment each partition is
positioned at its stored checkpoint + 1 (the beginning when nothing was applied).
Committed batches move positions forward (:meth:`Assignment.advance`); a replay or a
fencing reloads them from the checkpoints (:meth:`Assignment.reload`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import TopicPartition as KafkaPartition

from projections import TopicPartition

__all__ = ["Assignment", "Watermarks", "seek_target"]

#: ``(low, high)`` watermarks of a partition from the last fetch response (high < 0: none)
Watermarks = Callable[[TopicPartition], tuple[int, int]]


def seek_target(tp: TopicPartition, last: int | None) -> KafkaPartition:
    """Where to resume ``tp``: after its last applied offset, or at the beginning."""
    return KafkaPartition(tp[0], tp[1], last + 1 if last is not None else OFFSET_BEGINNING)


class Assignment:
    """Owned partitions → last applied offset (None: nothing applied yet)."""

    def __init__(self) -> None:
        self.positions: dict[TopicPartition, int | None] = {}

    def __bool__(self) -> bool:
        return bool(self.positions)

    def own(
        self, partitions: Iterable[TopicPartition], stored: Mapping[TopicPartition, int]
    ) -> list[KafkaPartition]:
        """Add ``partitions`` at their stored checkpoints; return where to start each."""
        targets = []
        for tp in partitions:
            self.positions[tp] = stored.get(tp)
            targets.append(seek_target(tp, stored.get(tp)))
        return targets

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop(tp, None)

    def reload(self, stored: Mapping[TopicPartition, int]) -> None:
        """Checkpoints moved under us (a replay, a fencing): take the stored ones."""
        self.positions = {tp: stored.get(tp) for tp in self.positions}

    def advance(self, committed: Mapping[TopicPartition, int]) -> list[KafkaPartition]:
        """A batch committed: move the owned partitions on; return the Kafka commit offsets."""
        offsets = []
        for tp, last in committed.items():
            if tp in self.positions:  # not revoked since the batch was prepared
                self.positions[tp] = last
                offsets.append(KafkaPartition(tp[0], tp[1], last + 1))
        return offsets

    def seek_targets(self) -> list[KafkaPartition]:
        return [seek_target(tp, last) for tp, last in self.positions.items()]

    def lag(self, watermarks: Watermarks) -> dict[TopicPartition, int]:
        """Events behind the cached high watermark, per owned partition (-1: unknown yet)."""
        out: dict[TopicPartition, int] = {}
        for tp, last in list(self.positions.items()):
            _low, high = watermarks(tp)
            out[tp] = -1 if high < 0 else max(0, high - (last + 1 if last is not None else 0))
        return out

    def caught_up(self, watermarks: Watermarks) -> bool:
        """Every owned partition is at the high watermark of its last fetch response."""
        if not self.positions:
            return False
        for tp, last in self.positions.items():
            _low, high = watermarks(tp)
            if high < 0:
                return False  # no fetch response for this partition yet
            if (last + 1 if last is not None else 0) != high:
                return False  # behind; or ahead of the log, which the history guard reports
        return True
