"""Low and high watermarks of every partition of some topics, as fetch responses report them.

Rebuild (is the whole history still there?), status (lag) and replay (the plan) need
the watermarks. They come from fetch responses (``get_watermark_offsets(cached=True)``
after a fetch), which every Kafka-protocol broker reports correctly; ListOffsets
"latest" is wrong on the embedded test broker for multi-record batches. A
:class:`WatermarkSource` protocol keeps the seam: tests drive the truncated-history
check through a source whose low watermarks are above zero.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from projections import TopicPartition as TP
from schemas.errors import BrokerUnavailable, ConfigurationError

__all__ = [
    "FetchedWatermarks",
    "WatermarkSource",
    "Watermarks",
    "event_times",
    "offsets_for_time",
    "partial_history",
]


@dataclass(frozen=True, slots=True)
class Watermarks:
    """``low``: oldest offset still held; ``high``: the offset the next event will get."""

    low: int
    high: int


class WatermarkSource(Protocol):
    def watermarks(self, topics: Iterable[str]) -> dict[TP, Watermarks]: ...


def partial_history(marks: Mapping[TP, Watermarks]) -> dict[TP, int]:
    """Partitions that no longer hold their whole history: partition → low watermark."""
    return {tp: m.low for tp, m in sorted(marks.items()) if m.low > 0}


class FetchedWatermarks:
    """Assigns every partition at its end and reads the watermarks of the first fetch."""

    def __init__(self, client_conf: Mapping[str, Any], *, timeout_s: float = 30.0) -> None:
        self._conf = dict(client_conf)
        self._timeout_s = timeout_s

    def watermarks(self, topics: Iterable[str]) -> dict[TP, Watermarks]:
        consumer = Consumer(
            {
                **self._conf,
                "group.id": f"projectionist.watermarks.{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "error",
                # one small fetch per partition is all we need
                "max.partition.fetch.bytes": 1024,
                "queued.max.messages.kbytes": 1024,
            }
        )
        try:
            tps = self._partitions(consumer, topics)
            consumer.assign([TopicPartition(t, p, OFFSET_END) for t, p in tps])
            deadline = time.monotonic() + self._timeout_s
            while True:
                consumer.consume(100, 0.1)  # messages are discarded; only watermarks count
                cached = {
                    tp: consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
                    for tp in tps
                }
                if all(high >= 0 for _low, high in cached.values()):
                    return {tp: Watermarks(max(0, low), high) for tp, (low, high) in cached.items()}
                if time.monotonic() > deadline:
                    unknown = sorted(f"{t}[{p}]" for (t, p), (_, h) in cached.items() if h < 0)
                    raise BrokerUnavailable(f"no fetch response for {', '.join(unknown)}")
        finally:
            consumer.close()

    def _partitions(self, consumer: Consumer, topics: Iterable[str]) -> list[TP]:
        out: list[TP] = []
        for topic in topics:
            try:
                meta = consumer.list_topics(topic, timeout=self._timeout_s).topics[topic]
            except KafkaException as exc:
                raise BrokerUnavailable(f"cannot read metadata of {topic}: {exc}") from exc
            if meta.error is not None or not meta.partitions:
                raise ConfigurationError(f"topic {topic} does not exist (create it first)")
            out += [(topic, p) for p in sorted(meta.partitions)]
        return out


def offsets_for_time(
    client_conf: Mapping[str, Any],
    partitions: Iterable[TP],
    timestamp_ms: int,
    *,
    timeout_s: float = 30.0,
) -> dict[TP, int | None]:
    """Per partition, the first offset whose timestamp is at or after ``timestamp_ms``
    (None: no such event yet). Kafka resolves per record; some brokers per batch."""
    tps = list(partitions)
    if not tps:
        return {}
    consumer = Consumer({**client_conf, "group.id": f"projectionist.times.{uuid.uuid4().hex[:8]}"})
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(t, p, timestamp_ms) for t, p in tps], timeout=timeout_s
        )
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot look up offsets for a time: {exc}") from exc
    finally:
        consumer.close()
    return {(f.topic, f.partition): (f.offset if f.offset >= 0 else None) for f in found}


def event_times(
    client_conf: Mapping[str, Any], offsets: Mapping[TP, int], *, timeout_s: float = 10.0
) -> dict[TP, int]:
    """The timestamp (ms) of the event at each given offset: the age of what was applied last."""
    if not offsets:
        return {}
    consumer = Consumer(
        {
            **client_conf,
            "group.id": f"projectionist.times.{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "max.partition.fetch.bytes": 1024,
            "queued.max.messages.kbytes": 1024,
        }
    )
    found: dict[TP, int] = {}
    done: set[TP] = set()
    try:
        consumer.assign([TopicPartition(t, p, off) for (t, p), off in offsets.items()])
        deadline = time.monotonic() + timeout_s
        while len(done) < len(offsets) and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.1):
                topic, partition = msg.topic(), msg.partition()
                if msg.error() is not None or topic is None or partition is None:
                    continue
                tp = (topic, partition)
                if tp in offsets and tp not in done:
                    done.add(tp)
                    ts_type, ts = msg.timestamp()
                    if ts_type and msg.offset() == offsets[tp]:  # not a compacted-away offset
                        found[tp] = ts
                    consumer.pause([TopicPartition(topic, partition)])
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read event times: {exc}") from exc
    finally:
        consumer.close()
    return found
