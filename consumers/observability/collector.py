"""Scrape-time series of every watched runner: its books, positions, probes and client stats.

:class:`RunnerCollector` reads each observer's latest runner snapshot (books,
positions, lag, high watermarks) and librdkafka statistics when Prometheus scrapes,
so the counters always equal the run's own books.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.observability.metrics import PREFIX, RUNNER_FAMILIES, SKIP_REASONS

if TYPE_CHECKING:
    from consumers.observability.health import ProjectionHealth
    from consumers.observability.observer import LoopObserver

__all__ = ["RunnerCollector"]


@dataclass(slots=True)
class _Watched:
    observer: LoopObserver
    health: ProjectionHealth


class RunnerCollector(Collector):
    """Scrape-time series of every watched runner (see ``RUNNER_FAMILIES``)."""

    def __init__(self) -> None:
        self._watched: list[_Watched] = []

    def watch(self, observer: LoopObserver, health: ProjectionHealth) -> None:
        self._watched.append(_Watched(observer, health))

    def unwatch(self, observer: LoopObserver) -> None:
        self._watched = [w for w in self._watched if w.observer is not observer]

    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        for w in list(self._watched):
            self._add(families, w)
        yield from families.values()

    @staticmethod
    def _families() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (kind, help_text, labels) in RUNNER_FAMILIES.items():
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            out[name] = cls(f"{PREFIX}_{name}", help_text, labels=list(labels))
        return out

    @staticmethod
    def _add(f: dict[str, Any], w: _Watched) -> None:
        snapshot = w.observer.snapshot
        slot, s = snapshot.slot, snapshot.stats
        f["events_consumed"].add_metric([slot], s.consumed)
        f["events_applied"].add_metric([slot], s.applied)
        for attr, reason in SKIP_REASONS.items():
            f["events_skipped"].add_metric([slot, reason], getattr(s, attr))
        f["events_dead_lettered"].add_metric([slot], s.dead_lettered)
        f["dead_letters_refused"].add_metric([slot], s.dead_letters_refused)
        f["transaction_retries"].add_metric([slot], s.retries)
        f["fenced_batches"].add_metric([slot], s.fenced)
        f["rebalances"].add_metric([slot], s.rebalances)
        f["last_applied_timestamp_seconds"].add_metric([slot], s.last_applied_at)
        positions = snapshot.positions
        f["assigned_partitions"].add_metric([slot], len(positions))
        f["paused"].add_metric([slot], float(snapshot.paused))
        lag, high = snapshot.lag, snapshot.high_watermarks
        for (topic, partition), last in sorted(positions.items()):
            labels = [slot, topic, str(partition)]
            if last is not None:
                f["checkpoint_offset"].add_metric(labels, last)
            if (topic, partition) in high:
                f["high_watermark_offset"].add_metric(labels, high[(topic, partition)])
            if lag.get((topic, partition), -1) >= 0:
                f["lag_events"].add_metric(labels, lag[(topic, partition)])
        f["ready"].add_metric([slot], float(w.health.readiness().ok))
        f["stalled"].add_metric([slot], float(not w.health.liveness().ok))
        f["wedged"].add_metric([slot], float(snapshot.wedged))
        kafka = w.observer.kafka
        if kafka is not None:
            f["kafka_brokers_up"].add_metric([slot], kafka.brokers_up)
            for broker, rtt in sorted(kafka.broker_rtt_s.items()):
                f["kafka_broker_rtt_seconds"].add_metric([slot, broker], rtt)
            f["kafka_fetch_queue_messages"].add_metric([slot], kafka.fetch_queue_messages)
            f["kafka_received_messages"].add_metric([slot], kafka.received_messages)
            f["kafka_received_bytes"].add_metric([slot], kafka.received_bytes)
