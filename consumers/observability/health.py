"""Liveness and readiness of one projection runner, as Kubernetes probes see them.

* **Liveness** fails only when restarting the process would help: the poll loop has
  not come back for ``stall_timeout_s``, or it is *silently stalled* — partitions
  assigned, lag > 0, nothing being retried and no checkpoint advancing for
  ``stall_timeout_s`` (e.g. a client that stopped fetching, an apply that hangs).
  Retries mean an outage is being handled: they never fail liveness, because pods
  restarted during a database or broker outage only add rebalance storms. Time spent
  paused by an operator (``projectionist pause``) is never "stalled" either.
* **Readiness** fails while the database or the broker is unreachable, while the
  loop is retrying a failed transaction, and while the group has no assignment — a
  partition-less spell shorter than ``readiness_grace_s`` (a normal rebalance) does
  not flap it. Past the grace, with events waiting and no consumer moving the
  checkpoints, the answer says ``wedged`` (``consumers.runtime.wedge``): a stuck group,
  not an idle spare replica. A paused consumer is **ready** (``ok (paused by an
  operator)``): it is healthy and holds on purpose; unready pods would stall a rollout
  made during the pause (a migration) and page for a decision an operator took. The
  ``ProjectionistPaused`` alert reminds of a pause left on.

Both are computed when asked (probe or scrape), from the latest plain
:class:`~consumers.runtime.snapshot.RunnerSnapshot` the loop handed its observer and
from the client statistics; nothing here talks to Kafka or touches the runner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consumers.observability.observer import LoopObserver
    from consumers.runtime.snapshot import RunnerSnapshot

__all__ = ["HealthSettings", "ProjectionHealth", "Verdict"]


@dataclass(frozen=True, slots=True)
class HealthSettings:
    stall_timeout_s: float = 120.0
    readiness_grace_s: float = 30.0
    #: probes and scrapes within this window reuse the last database ping
    ping_interval_s: float = 1.0
    #: librdkafka statistics older than this are not trusted for broker reachability
    kafka_stats_max_age_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str = "ok"


class ProjectionHealth:
    """Probe logic for one runner, from its observer's snapshots; ``ping_database`` raises
    when the database is away."""

    def __init__(
        self,
        observer: LoopObserver,
        *,
        settings: HealthSettings,
        ping_database: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.observer = observer
        self.settings = settings
        self._ping = ping_database
        self._clock = clock
        self._wall = wall_clock
        now = clock()
        self._created_at = now
        self._retries_seen = observer.snapshot.stats.retries
        self._retry_at = float("-inf")
        self._progress_sig: tuple[tuple[tuple[str, int], int | None], ...] = ()
        self._progress_at = now
        self._behind_seen = False
        self._assigned_seen_at: float | None = None
        self._ping_at = float("-inf")
        self._ping_error: str | None = None
        # Probes and scrapes arrive on several HTTP threads. Separate locks: a slow
        # database ping (readiness) must never hold up liveness.
        self._live_lock = threading.Lock()
        self._ready_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.observer.snapshot.slot

    def _retrying(self, now: float, loop: RunnerSnapshot) -> bool:
        """An outage is being handled: a retry happened lately or has not succeeded yet."""
        retries = loop.stats.retries
        if retries != self._retries_seen:
            self._retries_seen, self._retry_at = retries, now
        if loop.positions and not loop.ready:
            return True  # backoff between retries can outlast the stall timeout
        return now - self._retry_at < self.settings.stall_timeout_s

    def liveness(self) -> Verdict:
        with self._live_lock:
            return self._liveness()

    def readiness(self) -> Verdict:
        with self._ready_lock:
            return self._readiness()

    def _liveness(self) -> Verdict:
        now, limit = self._clock(), self.settings.stall_timeout_s
        loop = self.observer.snapshot
        retrying = self._retrying(now, loop)
        positions = tuple(sorted(loop.positions.items()))
        behind = sum(n for n in loop.lag.values() if n > 0)
        # The stall clock runs only while assigned, behind and not retrying; any
        # checkpoint movement restarts it, and so does falling behind (first seen now).
        if (
            not positions
            or not behind
            or retrying
            or loop.paused
            or positions != self._progress_sig
        ):
            self._progress_sig, self._progress_at = positions, now
        elif not self._behind_seen:
            self._progress_at = now
        self._behind_seen = bool(positions and behind)
        polled_at = loop.last_poll_at or self._created_at
        if not retrying and now - polled_at > limit:
            return Verdict(False, f"poll loop has not polled for {now - polled_at:.0f}s")
        if now - self._progress_at > limit:
            return Verdict(
                False,
                f"stalled: {behind} events behind and no checkpoint progress for "
                f"{now - self._progress_at:.0f}s (nothing being retried)",
            )
        return Verdict(True)

    def _readiness(self) -> Verdict:
        now = self._clock()
        loop = self.observer.snapshot
        unassigned = self._assignment(now, loop)
        if unassigned is not None:
            return unassigned
        if loop.positions and not loop.ready:
            return Verdict(False, "retrying after a database or broker failure")
        error = self._database_error(now)
        if error is not None:
            return Verdict(False, f"database unreachable: {error}")
        kafka = self.observer.kafka
        if (
            kafka is not None
            and self._wall() - kafka.received_at < self.settings.kafka_stats_max_age_s
            and kafka.brokers_up == 0
        ):
            return Verdict(False, "no Kafka broker reachable")
        return Verdict(True, "paused by an operator") if loop.paused else Verdict(True)

    def _assignment(self, now: float, loop: RunnerSnapshot) -> Verdict | None:
        """Not ready for want of partitions (past the grace), or None."""
        if loop.wedged and not loop.positions:  # the loop applied the grace already
            return Verdict(
                False,
                f"wedged: no partitions assigned while {loop.unassigned_lag} events wait "
                "and no consumer moves the checkpoints (a stuck consumer group)",
            )
        if loop.positions:
            self._assigned_seen_at = now
        elif self._assigned_seen_at is None:
            return Verdict(False, "no partitions assigned yet")
        elif now - self._assigned_seen_at > self.settings.readiness_grace_s:
            return Verdict(False, "no partitions assigned")
        return None

    def _database_error(self, now: float) -> str | None:
        if now - self._ping_at >= self.settings.ping_interval_s:
            try:
                self._ping()
                self._ping_error = None
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
                self._ping_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            self._ping_at = self._clock()
        return self._ping_error
