"""Probes and metrics of the processes that are not consumers: the outbox relay, the APIs.

Their pods serve ``/healthz`` ``/readyz`` ``/metrics`` on the metrics port like a
consumer's (:class:`~consumers.observability.endpoints.ObservabilityServer`):

* :class:`ServiceHealth` — liveness fails when the process's loop (if it has one) has not
  finished a round for ``stall_timeout_s``; readiness fails while its last round failed
  (an outage being retried) or its database does not answer.
* :class:`RelayMetrics` — the relay's observer: published and failed events per service
  and topic, and the outbox backlog (rows waiting, age of the oldest), measured at most
  every ``backlog_interval_s`` so an idle relay does not count rows ten times a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from consumers.observability.health import Verdict
from consumers.observability.metrics import Metrics
from producers.relay import outbox_backlog
from projections._db import ping_engine

__all__ = ["RelayMetrics", "ServiceHealth", "ping_engine"]

log = structlog.get_logger(__name__)


class ServiceHealth:
    """The probes of one non-consumer process; ``beat`` after each round of its loop."""

    def __init__(
        self,
        name: str,
        *,
        ping_database: Callable[[], None] | None = None,
        stall_timeout_s: float = 120.0,
        has_loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._ping = ping_database
        self._stall_timeout_s = stall_timeout_s
        self._has_loop = has_loop
        self._clock = clock
        self._lock = threading.Lock()
        self._beat_at = clock()
        self._failure: str | None = "starting" if has_loop else None

    def beat(self, failure: str | None = None) -> None:
        """A round ended: ``failure`` is why it failed (it is being retried), else None."""
        with self._lock:
            self._beat_at = self._clock()
            self._failure = failure

    def liveness(self) -> Verdict:
        with self._lock:
            idle = self._clock() - self._beat_at
        if self._has_loop and idle > self._stall_timeout_s:
            return Verdict(False, f"loop has not finished a round for {idle:.0f}s")
        return Verdict(True)

    def readiness(self) -> Verdict:
        with self._lock:
            failure = self._failure
        if failure is not None:
            return Verdict(False, failure if failure == "starting" else f"retrying: {failure}")
        if self._ping is not None:
            try:
                self._ping()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
                first = str(exc).splitlines()[0][:200] if str(exc) else ""
                return Verdict(False, f"database unreachable: {type(exc).__name__}: {first}")
        return Verdict(True)


class RelayMetrics:
    """The outbox relay's :class:`~producers.relay.RelayObserver`: metrics and its probe."""

    def __init__(
        self,
        metrics: Metrics,
        health: ServiceHealth,
        engine: Engine,
        *,
        services: tuple[str, ...] = (),
        backlog_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._engine = engine
        self._interval_s = backlog_interval_s
        self._clock = clock
        self._measured_at = float("-inf")
        self._services: set[str] = set(services)  # exported as 0 until rows appear

    def starting(self) -> None:
        """Before the first connection to the broker: the backlog is measured at once,
        not only after a first round (which an unreachable broker delays by its timeout)."""
        self._measure_backlog()

    def published(self, counts: dict[tuple[str, str], int]) -> None:
        for (service, topic), n in counts.items():
            self._metrics.relay_publish(service, topic, published=n)
            self._metrics.relay_failures.labels(service, topic)  # the series exists, at 0
        self._health.beat()
        self._measure_backlog()

    def failed(self, error: str) -> None:
        # which topics a failed round would have published is unknown: the failures
        # counter counts rounds under the topic "*"
        for service in self._services:
            self._metrics.relay_publish(service, "*", published=0, failed=1)
        self._health.beat(error)
        # The backlog keeps growing while the broker is away: keep measuring it (it is
        # skipped quietly when the database is the part that is away).
        self._measure_backlog()

    def _measure_backlog(self) -> None:
        now = self._clock()
        if now - self._measured_at < self._interval_s:
            return
        try:
            backlog = outbox_backlog(self._engine)
        except Exception as exc:  # noqa: BLE001 - the database is away: keep the last values
            log.debug("outbox backlog not measured", error=str(exc)[:200])
            return  # (or its table not created yet): measured again at the next call
        self._measured_at = now
        seen = set()
        for b in backlog:
            self._metrics.outbox_observed(b.service, pending=b.pending, oldest_age_s=b.oldest_age_s)
            seen.add(b.service)
        for service in self._services - seen:
            self._metrics.outbox_observed(service, pending=0, oldest_age_s=0.0)
        self._services |= seen
