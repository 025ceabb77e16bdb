"""Liveness and readiness verdicts of a consumer, driven by a fake runner's state."""

from __future__ import annotations

from consumers.observability.health import Verdict
from consumers.observability.observer import KafkaClientStats
from tests.support.observed import watched


def test_liveness_fails_when_behind_without_progress_and_recovers() -> None:
    """Assigned, lag > 0, no retries, no checkpoint movement for the stall timeout → unhealthy."""
    runner, _observer, health, clock, _ = watched(stall_s=10)
    runner.positions, runner.ready = {("blog", 0): 5}, True
    runner.lag = {("blog", 0): 100}
    verdicts = []
    for _ in range(4):  # the loop keeps polling: only the stall rule can fire
        clock.now += 4
        runner.last_poll_at = clock.now
        verdicts.append(health.liveness())
    assert [v.ok for v in verdicts] == [True, True, True, False]
    verdict = verdicts[-1]
    assert "stalled: 100 events behind" in verdict.reason
    runner.positions = {("blog", 0): 6}
    assert health.liveness().ok


def test_liveness_tolerates_retries_and_a_caught_up_idle_consumer() -> None:
    """Retrying an outage or having nothing to do never fails liveness."""
    runner, _observer, health, clock, _ = watched(stall_s=10)
    runner.positions, runner.ready = {("blog", 0): 5}, False  # a retry has not succeeded yet
    runner.lag = {("blog", 0): 100}
    for _ in range(5):
        clock.now += 5
        runner.last_poll_at = clock.now
        assert health.liveness().ok
    runner.ready, runner.lag = True, {("blog", 0): 0}
    for _ in range(5):
        clock.now += 5
        runner.last_poll_at = clock.now
        assert health.liveness().ok


def test_a_paused_consumer_is_live_ready_and_exported_as_paused() -> None:
    """Paused and behind for longer than the stall timeout: still live, ready ("paused"),
    projectionist_paused 1; once resumed the stall clock starts afresh."""
    runner, _observer, health, clock, registry = watched(stall_s=10)
    runner.positions, runner.ready, runner.paused = {("blog", 0): 5}, True, True
    runner.lag = {("blog", 0): 100}
    for _ in range(6):
        clock.now += 5
        runner.last_poll_at = clock.now
        assert health.liveness().ok, "time paused is not a stall"
    assert health.readiness() == Verdict(True, "paused by an operator")
    assert registry.get_sample_value("projectionist_paused", {"projection": "blog_v1"}) == 1.0
    runner.paused = False
    clock.now += 5
    runner.last_poll_at = clock.now
    assert health.liveness().ok, "resumed: the stall clock starts now, not at the pause"
    assert health.readiness() == Verdict(True)
    assert registry.get_sample_value("projectionist_paused", {"projection": "blog_v1"}) == 0.0
    for _ in range(3):
        clock.now += 4
        runner.last_poll_at = clock.now
    assert not health.liveness().ok, "behind without progress after the resume is a stall"


def test_liveness_fails_when_the_loop_stops_polling() -> None:
    """A poll loop stuck for longer than the stall timeout (no retries) is unhealthy."""
    runner, _observer, health, clock, _ = watched(stall_s=10)
    runner.positions, runner.ready, runner.last_poll_at = {("blog", 0): 5}, True, clock.now
    clock.now += 9
    assert health.liveness().ok
    clock.now += 2
    verdict = health.liveness()
    assert not verdict.ok
    assert "has not polled" in verdict.reason


def test_readiness_needs_assignment_with_grace_and_a_reachable_database() -> None:
    """No assignment yet → not ready; a short rebalance is tolerated; a failing ping is not."""
    failing: list[Exception] = []

    def ping() -> None:
        if failing:
            raise failing[0]

    runner, observer, health, clock, _ = watched(ping=ping, grace_s=5)
    assert health.readiness().reason == "no partitions assigned yet"
    runner.positions, runner.ready = {("blog", 0): None}, True
    assert health.readiness().ok
    runner.positions = {}
    clock.now += 4
    assert health.readiness().ok, "a rebalance shorter than the grace period must not flap"
    clock.now += 2
    assert not health.readiness().ok
    runner.positions = {("blog", 0): None}
    failing.append(ConnectionRefusedError("connection refused"))
    clock.now += 2
    verdict = health.readiness()
    assert not verdict.ok
    assert "database unreachable" in verdict.reason
    failing.clear()
    clock.now += 2
    assert health.readiness().ok
    observer.kafka = KafkaClientStats(received_at=clock.now, brokers_up=0)
    assert health.readiness().reason == "no Kafka broker reachable"
