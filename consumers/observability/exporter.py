"""Wiring: one registry, metrics, observers, probes and the HTTP server per process.

Built in ``main()`` (the ``consume`` command) or a test, never at import time::

    with observed_runner(settings, "blog", stop=stop) as runner:
        runner.run_forever()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from confluent_kafka import Consumer
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from consumers.observability.collector import RunnerCollector
from consumers.observability.endpoints import (
    ObservabilityServer,
    Probe,
    StatusSource,
    parse_address,
)
from consumers.observability.health import HealthSettings, ProjectionHealth
from consumers.observability.metrics import Metrics
from consumers.observability.observer import LoopObserver
from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.stop import StopSignal
from consumers.settings.concerns import ObservabilitySettings
from consumers.settings.models import Settings

__all__ = ["Observability", "observed_runner"]


class Observability:
    """Everything one process exports; ``watch`` each runner, then ``start``."""

    def __init__(
        self, settings: ObservabilitySettings, *, registry: CollectorRegistry | None = None
    ) -> None:
        if settings.metrics_address is not None:
            parse_address(settings.metrics_address)  # a typo fails before Kafka is touched
        # Per-series "_created" samples double the series count for no alert or panel.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        if registry is None:  # a shared registry (tests) has them already
            ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, _rss …
            PlatformCollector(registry=self.registry)  # python_info
            _build_info(self.registry)
        self.metrics = Metrics(self.registry)
        self.collector = RunnerCollector()
        self.registry.register(self.collector)
        self.health_settings = HealthSettings(
            stall_timeout_s=settings.stall_timeout_s,
            readiness_grace_s=settings.readiness_grace_s,
        )
        self.probes: list[Probe] = []
        self.server: ObservabilityServer | None = None
        #: ``GET /status``: set by ``build_runner`` (it knows the settings and projections)
        self.status: StatusSource | None = None

    def new_observer(self) -> LoopObserver:
        return LoopObserver(self.metrics)

    def watch(self, runner: ProjectionRunner, observer: LoopObserver) -> ProjectionHealth:
        """Export ``runner`` through ``observer`` (its snapshots) and probe it."""
        observer.polled(runner.snapshot())  # the slot and an empty assignment, before a poll
        health = ProjectionHealth(
            observer, settings=self.health_settings, ping_database=runner.ping_database
        )
        self.collector.watch(observer, health)
        self.probes.append(health)
        return health

    def watch_service(self, probe: Probe) -> None:
        """Probe a process that runs no projection (the outbox relay, an API)."""
        self.probes.append(probe)

    def unwatch(self, observer: LoopObserver) -> None:
        """Stop reporting a runner that has ended (a generation swap replaced it)."""
        self.collector.unwatch(observer)
        self.probes[:] = [p for p in self.probes if getattr(p, "observer", None) is not observer]

    def build_runner(self, settings: Settings, projection: str, **kwargs: Any) -> ProjectionRunner:
        """``consumers.app.build_runner`` plus metrics and probes; replaces earlier runners."""
        from consumers.app import build_runner, projection_registry
        from consumers.operations.status import StatusReport

        if self.status is None:
            registry = kwargs.get("projections") or projection_registry(settings)
            self.status = StatusReport(settings, registry).document
        for probe in list(self.probes):
            if isinstance(probe, ProjectionHealth):
                self.unwatch(probe.observer)
        self.probes.clear()  # a start-up probe too: the runner's own probe replaces it
        observer = self.new_observer()
        runner = build_runner(
            settings,
            projection,
            observer=observer,
            # librdkafka statistics cost a JSON document per interval: only when scraped.
            client_statistics=observer.client_statistics if self.settings.metrics_address else None,
            **kwargs,
        )
        self.watch(runner, observer)
        structlog.contextvars.bind_contextvars(projection=observer.snapshot.slot)
        self.start()  # idempotent; after the bind, so its log line names the projection
        return runner

    def start(self) -> None:
        """Serve the endpoints when ``metrics_address`` is set (else a no-op)."""
        if self.settings.metrics_address is None or self.server is not None:
            return
        self.server = ObservabilityServer(
            address=self.settings.metrics_address,
            registry=self.registry,
            probes=self.probes,
            status=self.status,
        )
        self.server.start()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def _build_info(registry: CollectorRegistry) -> None:
    """``projectionist_build_info{version, python}`` = 1: which release each pod runs."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("projectionist")
    except PackageNotFoundError:  # a source tree without an installed distribution
        release = "unknown"
    info = Gauge(
        "projectionist_build_info",
        "Always 1; the labels say which release and Python this process runs.",
        ("version", "python"),
        registry=registry,
    )
    info.labels(release, platform.python_version()).set(1)


@contextmanager
def observed_runner(
    settings: Settings,
    projection: str,
    *,
    stop: StopSignal | None = None,
    bootstrap_servers: str | None = None,
    consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
) -> Iterator[ProjectionRunner]:
    """A runner with metrics, probes and log context, serving until the block ends."""
    obs = Observability(settings.observability)
    runner = obs.build_runner(
        settings,
        projection,
        bootstrap_servers=bootstrap_servers,
        stop=stop,
        consumer_factory=consumer_factory,
    )
    obs.start()
    try:
        yield runner
    finally:
        obs.close()
        structlog.contextvars.unbind_contextvars("projection")
