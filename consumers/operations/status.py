"""``projectionist status``: per projection and partition, where it is and how far behind.

Joins what the database knows (generation, role, state, checkpoints: ``projections.
status``; distinct dead letters: ``dead_letter_log``) with what the broker reports (high
watermarks of the topics and of the projection's own dead-letter topics, via a
:class:`WatermarkSource`). Dead letters are counted once per origin: copies on the
topic (a crash between ack and commit) are shown apart as ``messages``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from consumers.kafka.dead_letters import dead_letter_topic
from consumers.kafka.watermarks import Watermarks, WatermarkSource
from consumers.settings.models import DatabaseSettings
from projections import Projection, TopicPartition, database_errors, make_engine
from projections.generations.status import age_s, read_status
from projections.progress.dead_letter_log import DeadLetterLog
from projections.registry import ProjectionRegistry
from schemas.errors import ConfigurationError

__all__ = ["collect_status"]


def collect_status(
    database: DatabaseSettings,
    projections: ProjectionRegistry,
    names: Iterable[str],
    *,
    dlq_suffix: str,
    watermarks: WatermarkSource,
    event_clock: EventClock | None = None,
) -> list[dict[str, Any]]:
    """One JSON-ready entry per projection (the ``--json`` shape; see the README)."""
    engine = make_engine(database.url(), read_only=True)
    now = time.time()
    out = []
    try:
        for name in names:
            projection = projections.create(name)
            with database_errors(), engine.connect() as conn:
                status = read_status(conn, name, projection.version)
                dead = DeadLetterLog().per_partition(conn, name)
            marks = _marks(watermarks, projection.topics)
            row = status.version
            entry: dict[str, Any] = {
                "projection": name,
                "active_generation": status.generations[0].generation,
                "previous_generation": row.previous_generation if row else None,
                "rebuilding_generation": row.rebuilding_generation if row else None,
                "epoch": row.epoch if row else 0,
                "dead_letters": {
                    "distinct": sum(n for n, _ in dead.values()),
                    "refused": sum(r for _, r in dead.values()),
                    "messages": _messages(watermarks, projection, dlq_suffix),
                },
                "generations": [],
            }
            for gen in status.generations:
                last_offsets = {tp: off for tp, (off, _at) in gen.checkpoints.items()}
                times = _times(event_clock, last_offsets, marks)
                partitions = []
                for tp in sorted(set(marks) | set(gen.checkpoints)):
                    stored = gen.checkpoints.get(tp)
                    last = stored[0] if stored else None
                    high = marks[tp].high if tp in marks else None
                    next_offset = last + 1 if last is not None else marks.get(tp, _ZERO).low
                    partitions.append(
                        {
                            "topic": tp[0],
                            "partition": tp[1],
                            "checkpoint": last,
                            "high_watermark": high,
                            "lag": None if high is None else max(0, high - next_offset),
                            "last_applied_age_s": round(age_s(stored[1]), 1) if stored else None,
                            "last_event_age_s": round(now - times[tp] / 1000, 1)
                            if tp in times
                            else None,
                            "dead_letters": dead.get(tp, (0, 0))[0],
                        }
                    )
                entry["generations"].append(
                    {
                        "generation": gen.generation,
                        "slot": gen.slot,
                        "role": gen.role,
                        "state": gen.state,
                        "instances": gen.instances,
                        "partitions": partitions,
                    }
                )
            out.append(entry)
    finally:
        engine.dispose()
    return out


_ZERO = Watermarks(0, 0)

#: reads the timestamp of the event at each offset (``consumers.kafka.watermarks.event_times``)
EventClock = Callable[[Mapping[TopicPartition, int]], Mapping[TopicPartition, int]]


def _times(
    clock: EventClock | None,
    offsets: Mapping[TopicPartition, int],
    marks: Mapping[TopicPartition, Watermarks],
) -> Mapping[TopicPartition, int]:
    # only offsets the topic still holds; the others have no event to read
    wanted = {tp: off for tp, off in offsets.items() if tp in marks and marks[tp].low <= off}
    return clock(wanted) if clock is not None and wanted else {}


def _marks(source: WatermarkSource, topics: Iterable[str]) -> dict[TopicPartition, Watermarks]:
    try:
        return source.watermarks(topics)
    except ConfigurationError:
        return {}  # the topic does not exist (yet): no watermarks to show


def _messages(source: WatermarkSource, projection: Projection, suffix: str) -> int:
    """Messages on the projection's own dead-letter topics (copies included)."""
    topics = [dead_letter_topic(t, projection.name, suffix) for t in projection.topics]
    return sum(m.high - m.low for m in _marks(source, topics).values())
