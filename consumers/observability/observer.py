"""The loop's observer: batch hooks → metrics and logs, snapshots for scrapes and probes.

:class:`LoopObserver` runs on the loop's thread (``RunObserver`` hooks and librdkafka's
``stats_cb``, which fires inside ``consume()``). It keeps plain snapshots — lag, high
watermarks, client statistics — that the HTTP thread reads without touching the Kafka
client (:mod:`consumers.observability.collector` turns them into series at scrape time).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from consumers.observability.metrics import Metrics
from projections import TopicPartition

if TYPE_CHECKING:
    from consumers.runtime.batch import PreparedBatch
    from consumers.runtime.runner import ProjectionRunner

__all__ = ["KafkaClientStats", "LoopObserver"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class KafkaClientStats:
    """The part of one librdkafka statistics report we export."""

    received_at: float
    brokers_up: int
    broker_rtt_s: dict[str, float] = field(default_factory=dict)
    fetch_queue_messages: int = 0
    received_messages: int = 0
    received_bytes: int = 0

    @classmethod
    def parse(cls, raw: str, *, now: float) -> KafkaClientStats:
        doc: dict[str, Any] = json.loads(raw)
        up, rtt = 0, {}
        for broker in doc.get("brokers", {}).values():
            if int(broker.get("nodeid", -1)) < 0:
                continue  # bootstrap placeholders, not cluster members
            up += broker.get("state") == "UP"
            rtt[str(broker["nodeid"])] = broker.get("rtt", {}).get("avg", 0) / 1e6  # µs
        queued = sum(
            max(0, int(part.get("fetchq_cnt", 0)))
            for topic in doc.get("topics", {}).values()
            for pid, part in topic.get("partitions", {}).items()
            if pid != "-1"
        )
        return cls(
            received_at=now,
            brokers_up=up,
            broker_rtt_s=rtt,
            fetch_queue_messages=queued,
            received_messages=int(doc.get("rxmsgs", 0)),
            received_bytes=int(doc.get("rx_bytes", 0)),
        )


class LoopObserver:
    """Implements :class:`consumers.runtime.runner.RunObserver` for one runner."""

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self._clock = clock
        #: per owned partition, from the last poll (read by scrapes and probes)
        self.lag: dict[TopicPartition, int] = {}
        self.high_watermarks: dict[TopicPartition, int] = {}
        self.kafka: KafkaClientStats | None = None

    def polled(self, runner: ProjectionRunner) -> None:
        positions = dict(runner.positions)
        lag = runner.lag()
        high = {}
        for tp, behind in lag.items():
            if behind >= 0:
                last = positions.get(tp)
                high[tp] = behind + (last + 1 if last is not None else 0)
        # Rebinding (not mutating) keeps readers on other threads consistent.
        self.lag, self.high_watermarks = lag, high

    def committed(self, runner: ProjectionRunner, batch: PreparedBatch, seconds: float) -> None:
        m, slot = self.metrics, runner.processor.projection.slot
        m.batch_size.labels(slot).observe(batch.consumed)
        m.batch_duration.labels(slot).observe(seconds)
        now_ms = self._clock() * 1000
        by_type: Counter[tuple[str, str]] = Counter()
        ages: dict[str, Any] = {}
        for ev in batch.events:
            by_type[(ev.topic, ev.event_type)] += 1
            if ev.timestamp_ms is not None:
                hist = ages.get(ev.topic) or ages.setdefault(
                    ev.topic, m.event_age.labels(slot, ev.topic)
                )
                hist.observe(max(0.0, (now_ms - ev.timestamp_ms) / 1000))
        for (topic, event_type), n in by_type.items():
            m.events_received.labels(slot, topic, event_type).inc(n)
        for letter in batch.dead_letters:
            msg = letter.message
            headers = dict(msg.headers() or [])
            event_id = headers.get("event_id")
            log.warning(
                "dead-lettered",
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                event_id=event_id.decode(errors="replace") if event_id else None,
                reason=letter.reason,
                error_class=type(letter.error).__name__,
            )
        log.debug(
            "batch committed",
            messages=batch.consumed,
            applied_events=len(batch.events),
            offsets={f"{t}[{p}]": o for (t, p), o in batch.ends.items()},
            seconds=round(seconds, 4),
        )
        self.polled(runner)

    def client_statistics(self, raw: str) -> None:
        """librdkafka's ``stats_cb`` (``statistics.interval.ms``)."""
        try:
            self.kafka = KafkaClientStats.parse(raw, now=self._clock())
        except (ValueError, KeyError, TypeError) as exc:
            log.info("unreadable client statistics", error=str(exc))
