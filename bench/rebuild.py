"""Rebuild mode, as the benchmark measures it: replay a topic into fresh tables.

``projectionist rebuild`` is being built on another branch; this stands in for it with
the same projection code: manual partition assignment from the beginning (no consumer
group, so no join and no rebalance), large batches, and the same
:class:`BatchProcessor` transaction (checkpoint + set-based writes) per batch.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from projections import BlogProjection, CheckpointStore, make_engine
from schemas import AvroSerde, SchemaCatalog

__all__ = ["replay"]


def replay(
    consumer_conf: dict[str, Any],
    *,
    database_url: str,
    topic: str,
    partitions: int,
    expected: int,
    batch_max_messages: int,
    timeout_s: float = 300.0,
) -> tuple[RunStats, float]:
    """Apply ``topic`` from offset 0 until ``expected`` events; return stats and active seconds."""
    processor = BatchProcessor(
        engine=make_engine(database_url),
        projection=BlogProjection(topic=topic),
        serde=AvroSerde(SchemaCatalog.load()),
        checkpoints=CheckpointStore(),
        dead_letters=None,
        stats=RunStats(),
    )
    processor.ensure_schema()
    consumer = Consumer(consumer_conf)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    positions: dict[tuple[str, int], int | None] = {(topic, p): None for p in range(partitions)}
    deadline = time.monotonic() + timeout_s
    first: float | None = None
    try:
        while processor.stats.consumed < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rebuild applied {processor.stats.consumed}/{expected}")
            messages = consumer.consume(batch_max_messages, 0.5)
            if not messages:
                continue
            if first is None:
                first = time.monotonic()
            good = [m for m in messages if m.error() is None]
            batch = processor.prepare(good, positions)
            if batch:
                positions.update(processor.commit(batch).positions)
    finally:
        consumer.close()
        processor.engine.dispose()
    return processor.stats, time.monotonic() - (first or time.monotonic())
