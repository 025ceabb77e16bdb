"""Fold sample events through the real batch transaction without a broker (FakeMessages)."""

from __future__ import annotations

from collections.abc import Sequence

from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from producers import SampleEvent
from projections import CheckpointStore, Projection, make_engine
from schemas import AvroSerde, SchemaCatalog
from tests.support.fakes import FakeMessage, ListSink

SERDE = AvroSerde(SchemaCatalog.load())


class Folder:
    """One projection's BatchProcessor on a real database, fed in publish order."""

    def __init__(self, url: str, projection: Projection, *, partitions: int = 2) -> None:
        self.processor = BatchProcessor(
            engine=make_engine(url),
            projection=projection,
            serde=SERDE,
            checkpoints=CheckpointStore(),
            dead_letters=ListSink(),
            stats=RunStats(),
        )
        self.processor.ensure_schema()
        self.topic = projection.topics[0]
        self.partitions = partitions
        self.positions: dict[tuple[str, int], int | None] = {
            (self.topic, p): None for p in range(partitions)
        }
        self._next = [0] * partitions

    def fold(self, events: Sequence[SampleEvent], *, batch: int = 50) -> None:
        messages = []
        for ev in events:
            p = sum(ev.key.encode()) % self.partitions
            value = SERDE.encode(ev.event_type, ev.record)
            messages.append(FakeMessage(self.topic, p, self._next[p], value, ev.key.encode()))
            self._next[p] += 1
        for start in range(0, len(messages), batch):
            prepared = self.processor.prepare(messages[start : start + batch], self.positions)
            self.positions.update(self.processor.commit(prepared).positions)

    def close(self) -> None:
        self.processor.engine.dispose()
