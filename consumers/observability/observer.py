"""The loop's observer: batch hooks → metrics and logs, snapshots for scrapes and probes.

:class:`LoopObserver` runs on the loop's thread (``RunObserver`` hooks and librdkafka's
``stats_cb``, which fires inside ``consume()``). It keeps plain snapshots — the runner's
:class:`RunnerSnapshot` (positions, lag, readiness, books) and client statistics —
that the HTTP thread reads without touching the Kafka client or the runner
(:mod:`consumers.observability.collector` turns them into series at scrape time).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import structlog

from consumers.observability.metrics import Metrics, observe_many
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.transaction import CommitResult
from projections import TopicPartition

__all__ = ["KafkaClientStats", "LoopObserver"]

_TOPIC_AND_TYPE = attrgetter("topic", "event_type")

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
    """Implements :class:`consumers.runtime.runner.RunObserver` for one runner.

    Keeps the runner's latest :class:`RunnerSnapshot` and librdkafka statistics for the
    HTTP thread (probes, scrapes); rebinding, never mutating, keeps those readers safe.
    """

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self._clock = clock
        #: the loop as of its last poll (empty until the first)
        self.snapshot = RunnerSnapshot()
        self.kafka: KafkaClientStats | None = None
        self._mail_seen = (0, 0)  # e-mails sent, failed: the books' totals already exported

    @property
    def lag(self) -> Mapping[TopicPartition, int]:
        """Per owned partition, events behind the high watermark (-1: unknown yet)."""
        return self.snapshot.lag

    def polled(self, snapshot: RunnerSnapshot) -> None:
        self.snapshot = snapshot
        self._mail_outcomes(snapshot)

    def _mail_outcomes(self, snapshot: RunnerSnapshot) -> None:
        """The e-mail delivery after each poll (notifications) counts into the books."""
        extra = snapshot.stats.extra
        if "mail_sent" not in extra:
            return
        sent, failed = extra.get("mail_sent", 0), extra.get("mail_failed", 0)
        m, slot = self.metrics, snapshot.slot
        m.emails_sent.labels(slot)  # both series exist from the first round, at 0
        m.emails_failed.labels(slot)
        m.email_outcome(slot, sent=sent - self._mail_seen[0], failed=failed - self._mail_seen[1])
        self._mail_seen = (sent, failed)

    def committed(self, snapshot: RunnerSnapshot, commit: CommitResult, seconds: float) -> None:
        m, slot, batch = self.metrics, snapshot.slot, commit.batch
        m.batch_size.labels(slot).observe(batch.consumed)
        m.batch_duration.labels(slot).observe(seconds)
        now_ms = self._clock() * 1000
        events = batch.events
        # counted in C: no Python step per event
        by_type: Counter[tuple[str, str]] = Counter(map(_TOPIC_AND_TYPE, events))
        # only live events: a replayed or rebuilt one is old by design, not late; one
        # pass per topic (a batch usually holds one)
        for topic in {topic for topic, _ in by_type}:
            ages = [
                max((now_ms - ev.timestamp_ms) / 1000, 0.0)
                for ev in events
                if ev.live and ev.timestamp_ms is not None and ev.topic == topic
            ]
            if ages:
                observe_many(m.event_age.labels(slot, topic), ages)
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
        self.snapshot = snapshot

    def client_statistics(self, raw: str) -> None:
        """librdkafka's ``stats_cb`` (``statistics.interval.ms``)."""
        try:
            self.kafka = KafkaClientStats.parse(raw, now=self._clock())
        except (ValueError, KeyError, TypeError) as exc:
            log.info("unreadable client statistics", error=str(exc))
