"""Wiring: one registry, metrics, observers, probes and the HTTP server per process.

Built in ``main()`` (the ``consume`` command) or a test, never at import time::

    with observed_runner(settings, "blog", stop=stop) as runner:
        runner.run_forever()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, disable_created_metrics
from sqlalchemy import Engine

from consumers.observability.collector import RunnerCollector
from consumers.observability.endpoints import ObservabilityServer, parse_address
from consumers.observability.health import HealthSettings, ProjectionHealth
from consumers.observability.metrics import Metrics
from consumers.observability.observer import LoopObserver
from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.stop import StopSignal
from consumers.settings.models import Settings

__all__ = ["Observability", "observed_runner"]


class Observability:
    """Everything one process exports; ``watch`` each runner, then ``start``."""

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        if settings.metrics_address is not None:
            parse_address(settings.metrics_address)  # a typo fails before Kafka is touched
        # Per-series "_created" samples double the series count for no alert or panel.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.collector = RunnerCollector()
        self.registry.register(self.collector)
        self.health_settings = HealthSettings(
            stall_timeout_s=settings.stall_timeout_s, readiness_grace_s=settings.readiness_grace_s
        )
        self.probes: list[ProjectionHealth] = []
        self.server: ObservabilityServer | None = None

    def new_observer(self) -> LoopObserver:
        return LoopObserver(self.metrics)

    def watch(self, runner: ProjectionRunner, observer: LoopObserver) -> ProjectionHealth:
        engine = runner.processor.engine
        health = ProjectionHealth(
            runner,
            observer,
            settings=self.health_settings,
            ping_database=lambda: _ping(engine),
        )
        self.collector.watch(runner, observer, health)
        self.probes.append(health)
        return health

    def unwatch(self, runner: ProjectionRunner) -> None:
        """Stop reporting a runner that has ended (a generation swap replaced it)."""
        self.collector.unwatch(runner)
        self.probes[:] = [p for p in self.probes if p.runner is not runner]

    def build_runner(self, settings: Settings, projection: str, **kwargs: Any) -> ProjectionRunner:
        """``consumers.app.build_runner`` plus metrics and probes; replaces earlier runners."""
        from consumers.app import build_runner

        for probe in list(self.probes):
            self.unwatch(probe.runner)
        observer = self.new_observer()
        runner = build_runner(
            settings,
            projection,
            observer=observer,
            # librdkafka statistics cost a JSON document per interval: only when scraped.
            client_statistics=observer.client_statistics if settings.metrics_address else None,
            **kwargs,
        )
        self.watch(runner, observer)
        structlog.contextvars.bind_contextvars(projection=runner.processor.projection.slot)
        self.start()  # idempotent; after the bind, so its log line names the projection
        return runner

    def start(self) -> None:
        """Serve the endpoints when ``metrics_address`` is set (else a no-op)."""
        if self.settings.metrics_address is None or self.server is not None:
            return
        self.server = ObservabilityServer(
            address=self.settings.metrics_address, registry=self.registry, probes=self.probes
        )
        self.server.start()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def _ping(engine: Engine) -> None:
    # A raw DBAPI connection: no "begin" hook, so SQLite's BEGIN IMMEDIATE cannot make a
    # probe wait for the loop's write transaction. The pool's pre-ping still applies.
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    finally:
        conn.close()


@contextmanager
def observed_runner(
    settings: Settings,
    projection: str,
    *,
    stop: StopSignal | None = None,
    bootstrap_servers: str | None = None,
) -> Iterator[ProjectionRunner]:
    """A runner with metrics, probes and log context, serving until the block ends."""
    obs = Observability(settings)
    runner = obs.build_runner(settings, projection, bootstrap_servers=bootstrap_servers, stop=stop)
    obs.start()
    try:
        yield runner
    finally:
        obs.close()
        structlog.contextvars.unbind_contextvars("projection")
