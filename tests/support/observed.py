"""A loop observer and probes watching a fake runner whose state tests set by hand."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from consumers.observability.collector import RunnerCollector
from consumers.observability.health import HealthSettings, ProjectionHealth
from consumers.observability.metrics import Metrics
from consumers.observability.observer import LoopObserver
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stats import RunStats

__all__ = ["FakeClock", "ObservedLoop", "fake_runner", "watched"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def fake_runner(**overrides: Any) -> Any:
    """What a runner would tell its observer, as attributes a test sets by hand."""
    runner = SimpleNamespace(
        stats=RunStats(),
        positions={},
        ready=False,
        last_poll_at=0.0,
        lag={},
        high_watermarks={},
        paused=False,
    )
    runner.__dict__.update(overrides)
    return runner


class ObservedLoop(LoopObserver):
    """An observer whose latest snapshot is the fake runner's state whenever it is read."""

    def __init__(self, metrics: Metrics, runner: Any) -> None:
        self.runner = runner
        super().__init__(metrics)

    @property  # type: ignore[override]
    def snapshot(self) -> RunnerSnapshot:
        r = self.runner
        return RunnerSnapshot(
            slot="blog_v1",
            positions=dict(r.positions),
            lag=dict(r.lag),
            high_watermarks=dict(r.high_watermarks),
            ready=r.ready,
            last_poll_at=r.last_poll_at,
            paused=r.paused,
            stats=r.stats,
        )

    @snapshot.setter
    def snapshot(self, _value: RunnerSnapshot) -> None:
        pass  # the test sets the fake runner's attributes instead


def watched(
    *, ping: Any = None, stall_s: float = 10.0, grace_s: float = 5.0
) -> tuple[Any, LoopObserver, ProjectionHealth, FakeClock, CollectorRegistry]:
    registry = CollectorRegistry()
    runner = fake_runner()
    observer = ObservedLoop(Metrics(registry), runner)
    clock = FakeClock()
    health = ProjectionHealth(
        observer,
        settings=HealthSettings(stall_timeout_s=stall_s, readiness_grace_s=grace_s),
        ping_database=ping or (lambda: None),
        clock=clock,
        wall_clock=clock,
    )
    collector = RunnerCollector()
    collector.watch(observer, health)
    registry.register(collector)
    return runner, observer, health, clock, registry
