"""Every Prometheus metric Projectionist exports, defined in one place.

Nothing is registered at import time: :class:`Metrics` builds its instruments on the
:class:`~prometheus_client.CollectorRegistry` it is given (created in ``main()`` or a
test). Label values stay bounded: projection slots, topics, partitions, event types,
skip reasons, broker ids — never event ids, keys or payloads.

Two kinds of series:

* **Instruments** (counters, gauges, histograms below) that hooks update as things
  happen: the loop observer (:mod:`consumers.observability.observer`) and, later, the rebuild,
  outbox relay and e-mail code through the ``*_`` helper methods.
* **Scrape-time families** named in :data:`RUNNER_FAMILIES`, read from each runner's
  :class:`~consumers.runtime.stats.RunStats` and position snapshot by
  :class:`~consumers.observability.collector.RunnerCollector`, so the counters always equal the
  run's own books (``consumed == applied + skipped + dead_lettered``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["PREFIX", "RUNNER_FAMILIES", "SKIP_REASONS", "Metrics", "observe_many"]

PREFIX = "projectionist"

#: RunStats field → ``reason`` label of ``projectionist_events_skipped_total``
SKIP_REASONS = {
    "skipped_offset": "offset",
    "skipped_event_id": "event_id",
    "stale": "stale_version",
    "ignored": "ignored_type",
}

#: name (without prefix) → (type, help, labels) of the series read at scrape time
RUNNER_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "events_consumed": (
        "counter",
        "Messages taken from Kafka by the projection (each lands in one outcome bucket).",
        ("projection",),
    ),
    "events_applied": (
        "counter",
        "Events that changed the read model.",
        ("projection",),
    ),
    "events_skipped": (
        "counter",
        "Events consumed but not applied, by reason "
        "(offset: redelivered; event_id: duplicate id; stale_version; ignored_type).",
        ("projection", "reason"),
    ),
    "events_dead_lettered": (
        "counter",
        "Poison messages sent to the dead-letter topic.",
        ("projection",),
    ),
    "dead_letters_refused": (
        "counter",
        "Dead letters the broker refused for good (e.g. too large), kept in the database "
        "instead (`dlq list` shows them).",
        ("projection",),
    ),
    "transaction_retries": (
        "counter",
        "Retries after a transient database or broker failure.",
        ("projection",),
    ),
    "fenced_batches": (
        "counter",
        "Batches rolled back because another consumer owns the partition now.",
        ("projection",),
    ),
    "rebalances": (
        "counter",
        "Partition assignments and revocations seen by the consumer.",
        ("projection",),
    ),
    "last_applied_timestamp_seconds": (
        "gauge",
        "Unix time of the last batch that changed the read model (0: none yet).",
        ("projection",),
    ),
    "paused": (
        "gauge",
        "Whether an operator has paused the projection with projectionist pause (1) or not (0).",
        ("projection",),
    ),
    "assigned_partitions": (
        "gauge",
        "Partitions currently assigned to this consumer.",
        ("projection",),
    ),
    "checkpoint_offset": (
        "gauge",
        "Last applied offset stored in the read-model database, per partition.",
        ("projection", "topic", "partition"),
    ),
    "high_watermark_offset": (
        "gauge",
        "High watermark seen in the last fetch response, per partition.",
        ("projection", "topic", "partition"),
    ),
    "lag_events": (
        "gauge",
        "Events behind the high watermark, per partition.",
        ("projection", "topic", "partition"),
    ),
    "ready": (
        "gauge",
        "Readiness as /readyz answers it (1: assigned, database and broker reachable).",
        ("projection",),
    ),
    "stalled": (
        "gauge",
        "Liveness failure as /healthz answers it (1: loop stuck, or behind without progress).",
        ("projection",),
    ),
    "wedged": (
        "gauge",
        "Stuck group as /readyz answers it (1: no partitions past the readiness grace "
        "while events wait and no consumer moves the checkpoints).",
        ("projection",),
    ),
    "kafka_brokers_up": (
        "gauge",
        "Brokers in state UP in librdkafka's last statistics report.",
        ("projection",),
    ),
    "kafka_broker_rtt_seconds": (
        "gauge",
        "Average broker round-trip time in librdkafka's last statistics window "
        "(fetch long-polls included).",
        ("projection", "broker"),
    ),
    "kafka_fetch_queue_messages": (
        "gauge",
        "Messages fetched and queued in librdkafka, not yet consumed.",
        ("projection",),
    ),
    "kafka_received_messages": (
        "counter",
        "Messages received from brokers by librdkafka (client statistics).",
        ("projection",),
    ),
    "kafka_received_bytes": (
        "counter",
        "Bytes received from brokers by librdkafka (client statistics).",
        ("projection",),
    ),
}

# Batches hold up to batch_max_messages (5,000 by default) messages.
_BATCH_SIZES = (1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000)
_BATCH_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# From "just published" to "an hour behind": the SLO alert reads the 99th percentile.
_AGE_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3_600)


def observe_many(histogram: Histogram, values: Iterable[float]) -> None:
    """``histogram.observe(v)`` for each value, at one bucket search and one lock per bucket.

    For a batch's event ages (one value per event): ``observe`` takes the value's lock
    and walks the buckets per call, which was ~6 % of the blog loop. This fills the same
    per-bucket counters and the sum that ``observe`` does (prometheus_client keeps them
    as ``_buckets`` and ``_sum``); tests/unit/test_observe_many.py compares the two.
    """
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bound >= value, as observe()
        total += value
    if not any(counts):
        return
    histogram._sum.inc(total)
    for bucket, n in zip(histogram._buckets, counts, strict=True):
        if n:
            bucket.inc(n)


class Metrics:
    """The instruments of one process, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = PREFIX
        r = registry
        # -- the consumer loop (updated by consumers.observability.observer) ----------------
        self.events_received = Counter(
            f"{p}_events_received",
            "Decoded events handed to the projection, by topic and event type.",
            ("projection", "topic", "event_type"),
            registry=r,
        )
        self.batch_size = Histogram(
            f"{p}_batch_messages",
            "Messages per committed batch (one database transaction).",
            ("projection",),
            buckets=_BATCH_SIZES,
            registry=r,
        )
        self.batch_duration = Histogram(
            f"{p}_batch_duration_seconds",
            "Duration of a batch's successful transaction (dead letters, apply, checkpoint).",
            ("projection",),
            buckets=_BATCH_SECONDS,
            registry=r,
        )
        self.event_age = Histogram(
            f"{p}_event_age_seconds",
            "Age of each event when its batch committed (now minus the Kafka timestamp).",
            ("projection", "topic"),
            buckets=_AGE_SECONDS,
            registry=r,
        )
        # -- rebuild (issue 4) ----------------------------------------------------------
        self.rebuild_progress = Gauge(
            f"{p}_rebuild_progress_ratio",
            "Share of the topic replayed into the shadow tables by a running rebuild (0..1).",
            ("projection",),
            registry=r,
        )
        self.rebuild_last_progress = Gauge(
            f"{p}_rebuild_last_progress_timestamp_seconds",
            "Unix time a running rebuild last advanced (0: no rebuild running).",
            ("projection",),
            registry=r,
        )
        # -- outbox and relay (issue 6) -------------------------------------------------
        self.outbox_backlog = Gauge(
            f"{p}_outbox_pending_events",
            "Outbox rows written but not yet published by the relay.",
            ("service",),
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            f"{p}_outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished outbox row (0: backlog empty).",
            ("service",),
            registry=r,
        )
        self.relay_published = Counter(
            f"{p}_relay_published_events",
            "Outbox events the relay published and the broker acknowledged.",
            ("service", "topic"),
            registry=r,
        )
        self.relay_failures = Counter(
            f"{p}_relay_publish_failures",
            "Relay publish attempts that failed (retried later).",
            ("service", "topic"),
            registry=r,
        )
        # -- e-mail projection and tag-cloud check (issue 5) -----------------------------
        self.emails_sent = Counter(
            f"{p}_emails_sent",
            "E-mails handed to the mail server.",
            ("projection",),
            registry=r,
        )
        self.emails_failed = Counter(
            f"{p}_emails_failed",
            "E-mails the mail server refused or that could not be sent.",
            ("projection",),
            registry=r,
        )
        self.tag_cloud_drift = Gauge(
            f"{p}_tag_cloud_drift_tags",
            "Tags whose stored count differs from a recount over live posts (0: consistent).",
            ("projection",),
            registry=r,
        )

    # -- helpers for the code of other issues -----------------------------------------------
    def rebuild_advanced(self, projection: str, *, done: int, total: int, now: float) -> None:
        """A rebuild of ``projection`` (slot) replayed ``done`` of ``total`` events."""
        self.rebuild_progress.labels(projection).set(done / total if total > 0 else 1.0)
        self.rebuild_last_progress.labels(projection).set(now)

    def rebuild_finished(self, projection: str) -> None:
        self.rebuild_progress.labels(projection).set(1.0)
        self.rebuild_last_progress.labels(projection).set(0)

    def outbox_observed(self, service: str, *, pending: int, oldest_age_s: float) -> None:
        self.outbox_backlog.labels(service).set(pending)
        self.outbox_oldest_age.labels(service).set(oldest_age_s if pending else 0.0)

    def relay_publish(self, service: str, topic: str, *, published: int, failed: int = 0) -> None:
        if published:
            self.relay_published.labels(service, topic).inc(published)
        if failed:
            self.relay_failures.labels(service, topic).inc(failed)

    def email_outcome(self, projection: str, *, sent: int, failed: int = 0) -> None:
        if sent:
            self.emails_sent.labels(projection).inc(sent)
        if failed:
            self.emails_failed.labels(projection).inc(failed)

    def tag_cloud_checked(self, projection: str, *, drifted_tags: int) -> None:
        self.tag_cloud_drift.labels(projection).set(drifted_tags)
