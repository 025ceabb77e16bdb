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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from projections import TopicPartition as TP
from schemas.errors import BrokerUnavailable, ConfigurationError

__all__ = [
    "VERIFY_LIMIT",
    "FetchedWatermarks",
    "RecordTimes",
    "WatermarkSource",
    "Watermarks",
    "event_times",
    "offsets_for_time",
    "partial_history",
    "verify_time_offsets",
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


#: records read past the broker's answer while looking for the asked time (a broker that
#: answers per batch, not per record, is off by at most a batch)
VERIFY_LIMIT = 10_000

#: reads ``(offset, timestamp_ms)`` of the records of a partition from an offset on, in
#: order, to the end of the partition (at most ``limit`` of them)
RecordTimes = Callable[[TP, int, int], Iterable[tuple[int, int]]]


def offsets_for_time(
    client_conf: Mapping[str, Any],
    partitions: Iterable[TP],
    timestamp_ms: int,
    *,
    timeout_s: float = 30.0,
) -> dict[TP, int | None]:
    """Per partition, the first offset whose timestamp is at or after ``timestamp_ms``
    (None: no such event yet), checked against the records (:func:`verify_time_offsets`)."""
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
    answer = {(f.topic, f.partition): (f.offset if f.offset >= 0 else None) for f in found}
    return verify_time_offsets(
        answer,
        timestamp_ms,
        lambda tp, start, limit: _record_times(client_conf, tp, start, limit, timeout_s),
    )


def verify_time_offsets(
    answer: Mapping[TP, int | None], timestamp_ms: int, read: RecordTimes
) -> dict[TP, int | None]:
    """The broker's ``offsets_for_times`` answer, checked against the record timestamps.

    A replay must never rewind further than asked because a broker answered wrongly (the
    embedded test broker answers offset 0 for a time after the last event, and resolves
    per batch by append time). So the record at each answered offset is read: at or after
    the time, the answer stands; older, the first later record at or after the time is
    taken, and when there is none the answer is "end" (None). An answer that cannot be
    checked within :data:`VERIFY_LIMIT` records is refused with one line.
    """
    out: dict[TP, int | None] = {}
    for tp, offset in answer.items():
        if offset is None:
            out[tp] = None
            continue
        out[tp] = None
        seen = 0
        for seen, (at, ts) in enumerate(read(tp, offset, VERIFY_LIMIT), start=1):  # noqa: B007
            if ts >= timestamp_ms:
                out[tp] = at
                break
        else:
            if seen >= VERIFY_LIMIT:
                raise ConfigurationError(
                    f"the broker answered offset {offset} of {tp[0]}[{tp[1]}] for that time, "
                    f"but no record among the next {VERIFY_LIMIT} is that recent: "
                    "give offsets instead (--from 0=120,1=80)"
                )
    return out


def _record_times(
    client_conf: Mapping[str, Any], tp: TP, start: int, limit: int, timeout_s: float
) -> Iterator[tuple[int, int]]:
    """``(offset, timestamp_ms)`` from ``start`` to the partition's end (fetch watermarks)."""
    consumer = Consumer(
        {
            **client_conf,
            "group.id": f"projectionist.times.{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(tp[0], tp[1], start)])
        deadline = time.monotonic() + timeout_s
        given = 0
        while given < limit:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"cannot read {tp[0]}[{tp[1]}] to check a time")
            for msg in consumer.consume(500, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return
                    continue
                ts_type, ts = msg.timestamp()
                given += 1
                yield msg.offset() or 0, (ts if ts_type else -1)
                if given >= limit:
                    return
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read event times: {exc}") from exc
    finally:
        consumer.close()


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
