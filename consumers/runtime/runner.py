"""The consumer-group loop of one projection: poll, commit batches, follow rebalances.

``run_forever()`` serves the Deployment; ``drain()`` stops once every assigned
partition has caught up with the high watermark seen in fetch responses (the demo,
the tests and rebuilds). Both share one loop. On assignment each partition is
positioned at its stored checkpoint + 1 — the database, not Kafka, decides where
consumption resumes (:mod:`consumers.runtime.assignment`). Kafka commits follow each
database commit for lag tools only.

Nothing outside reads the runner's state: after every poll it hands a plain
:class:`RunnerSnapshot` to its observer (metrics, probes) and its ``on_batch`` hook
(e-mail delivery, progress bars); ``snapshot()`` builds one on request, from any thread:
it never touches the Kafka client (not safe while the loop is inside ``consume()``),
the loop measures lag from the cached watermarks after each poll and commit.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from consumers.runtime.assignment import Assignment
from consumers.runtime.gc_tuning import tune_gc_for_batches
from consumers.runtime.history_guard import HistoryGuard
from consumers.runtime.hooks import ControlAction, RunnerControl, RunObserver
from consumers.runtime.message_errors import without_errors
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.runtime.transaction import PendingCommit
from consumers.runtime.wedge import WedgeWatch
from consumers.settings.concerns import LoopSettings
from projections import TopicPartition as TP
from schemas.backoff import Backoff
from schemas.errors import BrokerUnavailable, FencedError, RetryableError

__all__ = [
    "ControlAction",
    "ProjectionRunner",
    "RunObserver",
    "RunnerControl",
    "tune_gc_for_batches",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")


class ProjectionRunner:
    """Runs one projection in one consumer group (or on a manual assignment)."""

    def __init__(
        self,
        *,
        consumer_conf: dict[str, Any],
        processor: BatchProcessor,
        loop: LoopSettings,
        cooperative: bool = True,
        stop: StopSignal | None = None,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        on_batch: Callable[[RunnerSnapshot], None] | None = None,
        observer: RunObserver | None = None,
        assignment: Sequence[TP] | None = None,
        control: RunnerControl | None = None,
        wedge: WedgeWatch | None = None,
    ) -> None:
        self._processor = processor
        #: the run's books (``drain()`` and ``run_forever()`` return them too)
        self.stats: RunStats = processor.stats
        self._loop = loop
        self._cooperative = cooperative
        self._backoff = Backoff(loop.retry_initial_s, loop.retry_max_s)
        self.stop = stop or StopSignal()
        self._conf = consumer_conf
        self._factory = consumer_factory
        self._on_batch = on_batch
        self._observer = observer
        self._owned = Assignment()
        self._pending: PendingCommit | None = None
        self._deadline: float | None = None  # drain --timeout, also while a batch retries
        self._assigned_at = 0.0
        self._ready = False
        self._last_poll_at = 0.0
        #: per owned partition, measured on the loop thread (-1: not known yet)
        self._lag: dict[TP, int] = {}
        #: high watermarks asked of the broker while paused (a retry), until fetching resumes
        self._queried_high: dict[TP, int] = {}
        self._queried_at = float("-inf")
        #: manual assignment of exactly these partitions (a rebuild), instead of a group
        self._manual = list(assignment) if assignment is not None else None
        self._control = control
        #: group mode only: tells a stuck group from an idle spare (``runtime.wedge``)
        self._wedge = wedge if assignment is None else None
        self._switched = False
        #: an operator paused the projection: fetching is paused, polling goes on
        self._paused = False
        self._history = HistoryGuard(processor.projection.slot)

    @property
    def processor(self) -> BatchProcessor:
        """The batch processor this runner drives (fault-injection drivers wrap it)."""
        return self._processor

    # -- public entry points -----------------------------------------------------------
    def run_forever(self) -> RunStats:
        return self._run(drain=False, timeout_s=None)

    def drain(self, *, timeout_s: float | None = None) -> RunStats:
        """Consume until caught up with the high watermark, then stop (DataLoss/timeout raise)."""
        return self._run(drain=True, timeout_s=timeout_s)

    def snapshot(self) -> RunnerSnapshot:
        """The loop as it is now: positions, lag, readiness, books (a copy, immutable)."""
        lag = self._lag
        positions = dict(self._owned.positions)
        high = {}
        for tp, behind in lag.items():
            if behind >= 0:
                last = positions.get(tp)
                high[tp] = behind + (last + 1 if last is not None else 0)
        stats = copy.copy(self.stats)
        stats.extra = dict(self.stats.extra)
        return RunnerSnapshot(
            slot=self._processor.projection.slot,
            positions=positions,
            lag=lag,
            high_watermarks=high,
            ready=self._ready,
            last_poll_at=self._last_poll_at,
            assigned_at=self._assigned_at,
            switched=self._switched,
            paused=self._paused,
            wedged=self._wedge is not None and self._wedge.wedged,
            unassigned_lag=self._wedge.lag if self._wedge is not None else 0,
            stats=stats,
        )

    def ping_database(self) -> None:
        """Raise when the read-model database does not answer (readiness)."""
        self._processor.ping()

    # -- the loop ------------------------------------------------------------------------
    def _run(self, *, drain: bool, timeout_s: float | None) -> RunStats:
        self.stats.started_at = self.stats.started_at or time.time()
        tune_gc_for_batches()
        processor = self._processor
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._deadline = deadline
        self._retry_until_done(processor.ensure_schema, "create tables", deadline=deadline)
        consumer = self._factory(self._conf)
        projection = processor.projection
        try:
            if self._manual is not None:
                self._assign_manually(consumer, self._manual)
            else:
                consumer.subscribe(
                    list(projection.topics),
                    on_assign=self._on_assign,
                    on_revoke=self._on_revoke,
                    on_lost=self._on_revoke,
                )
            log.info("consumer started", projection=projection.slot, topics=list(projection.topics))
            while not self.stop.is_set():
                if self._follow_control(consumer) == "switch":
                    self._switched = True
                    break
                messages = consumer.consume(
                    self._loop.batch_max_messages,
                    # paused: nothing can arrive; poll for membership without spinning
                    max(self._loop.batch_timeout_s, 0.2)
                    if self._paused
                    else self._loop.batch_timeout_s,
                )
                self._last_poll_at = time.monotonic()
                if self._paused:
                    # fetched before the pause took effect: dropped, resume re-reads them
                    # from checkpoint + 1, so the checkpoint holds still while paused
                    messages = []
                if self._wedge is not None:
                    # paused, nobody moves the checkpoints by design: no wedge judgment
                    # (an unassigned spare replica would otherwise turn "wedged")
                    self._wedge.observe(consumer, bool(self._owned.positions) or self._paused)
                if self._observer is not None:
                    self._measure(consumer)
                    self._observer.polled(self.snapshot())  # probes: the loop is polling
                batch = processor.prepare(
                    without_errors(messages, projection.slot), self._owned.positions
                )
                if batch:
                    self._commit(consumer, processor.begin(batch))
                if self._on_batch is not None:
                    self._measure(consumer)
                    self._on_batch(self.snapshot())
                # Not kept alive while the next poll fetches and decodes: a batch (its
                # messages, records and rows) is ~2.5 KB per event, two of them at once
                # were the peak RSS of a backlog.
                del messages, batch
                self._history.check(self._owned.positions, lambda tp: _watermarks(consumer, tp))
                if drain and self._owned.caught_up(lambda tp: _watermarks(consumer, tp)):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    held = (
                        " (the projection is paused: projectionist resume)" if self._paused else ""
                    )
                    raise BrokerUnavailable(f"drain did not catch up within {timeout_s}s{held}")
        finally:
            self._close(consumer)
        return self.stats

    def _follow_control(self, consumer: Consumer) -> ControlAction | None:
        """Between batches: a replay moved the checkpoints (re-seek), a swap happened, or
        an operator paused or resumed the projection."""
        if self._control is None:
            return None
        wedged = self._wedge is not None and self._wedge.wedged
        action = self._control.check(list(self._owned.positions), wedged=wedged)
        if action == "reseek":
            self._reposition(consumer, reload=True)
        elif action == "pause":
            # Between batches: nothing is pending. Fetching stops on every owned
            # partition; the loop keeps polling, so the group membership stays.
            self._paused = True
            consumer.pause(consumer.assignment())
        elif action == "resume":
            self._paused = False
            self._reposition(consumer, reload=False)  # checkpoint + 1, fetching again
        return action

    def _close(self, consumer: Consumer) -> None:
        self._ready = False
        if self._observer is not None:
            self._measure(consumer)
            self._observer.polled(self.snapshot())  # the books as the run ends
        consumer.close()  # leaves the group at once: no wait for the session timeout
        if self._control is not None:
            self._control.close()  # before the engine goes: it removes its heartbeat
        self._processor.close()
        log.info("consumer closed", projection=self._processor.projection.slot, **self._summary())

    def _measure(self, consumer: Consumer) -> None:
        """Lag from the cached watermarks of fetch responses (on the loop's thread only)."""
        self._lag = self._owned.lag(lambda tp: _watermarks(consumer, tp))

    def _commit(self, consumer: Consumer, pending: PendingCommit) -> None:
        self._pending = pending
        attempt = 0
        paused = False
        try:
            while True:
                try:
                    started = time.perf_counter()
                    commit = pending.run()
                    seconds = time.perf_counter() - started
                    # before the re-seek in ``finally``: resume after this batch, not in it
                    offsets = self._owned.advance(commit.positions)
                    break
                except RetryableError as exc:
                    attempt += 1
                    self.stats.retries += 1
                    self._ready = False
                    if self._deadline is not None and time.monotonic() > self._deadline:
                        # --drain --timeout: an outage that outlasts it ends the run
                        raise BrokerUnavailable(
                            f"drain did not catch up in time: the batch still fails ({exc})"
                        ) from exc
                    delay = self._backoff.delay(attempt)  # jitter: replicas must not retry in step
                    log.warning(
                        "batch failed, retrying",
                        error=str(exc),
                        attempt=attempt,
                        delay_s=round(delay, 2),
                    )
                    if not paused:
                        consumer.pause(consumer.assignment())
                        paused = True
                    self._keep_membership(consumer, delay)
                    if self.stop.is_set():
                        return  # nothing committed: the batch is redelivered after restart
                except FencedError as exc:
                    self.stats.fenced += 1
                    self._processor.new_epoch()
                    log.warning("batch fenced off; reloading checkpoints", error=str(exc))
                    self._reposition(consumer, reload=True)
                    return
        finally:
            self._pending = None
            if paused:
                self._reposition(consumer, reload=False)
                self._queried_high.clear()  # fetches refresh the cached watermarks again
                self._queried_at = float("-inf")
        self._ready = True
        if self._observer is not None:
            self._measure(consumer)
            self._observer.committed(self.snapshot(), commit, seconds)
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # lag reporting only; the DB holds the truth
                log.info("kafka commit skipped", error=str(exc))

    def _keep_membership(self, consumer: Consumer, seconds: float) -> None:
        """Wait while polling, so heartbeats, rebalances and max.poll.interval stay healthy."""
        until = time.monotonic() + seconds
        while not self.stop.is_set() and (left := until - time.monotonic()) > 0:
            consumer.consume(self._loop.batch_max_messages, min(0.2, left))  # paused: discarded
            self._last_poll_at = time.monotonic()
            if self._observer is not None:
                self._query_high_watermarks(consumer)
                self._lag = self._owned.lag(lambda tp: self._paused_watermarks(consumer, tp))
                self._observer.polled(self.snapshot())  # probes see the retry and the poll

    def _query_high_watermarks(self, consumer: Consumer) -> None:
        """While paused for a retry no fetch refreshes the cached watermarks, yet events pile
        up: ask the broker (ListOffsets) every few seconds, so lag and high watermark stay
        current for the autoscaler and the alerts during a database outage."""
        if time.monotonic() - self._queried_at < _PAUSED_LAG_S:
            return
        self._queried_at = time.monotonic()
        for tp in list(self._owned.positions):
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(tp[0], tp[1]), timeout=1.0, cached=False
                )
            except KafkaException:
                continue  # the broker is the part that is away: keep the last value
            self._queried_high[tp] = int(high)

    def _paused_watermarks(self, consumer: Consumer, tp: TP) -> tuple[int, int]:
        low, high = _watermarks(consumer, tp)
        return low, max(high, self._queried_high.get(tp, -1))

    def _reposition(self, consumer: Consumer, *, reload: bool) -> None:
        """Seek every owned partition back to its checkpoint + 1 and resume fetching."""
        if reload and self._owned:
            owned = list(self._owned.positions)
            stored = self._retry_until_done(
                lambda: self._processor.load_positions(owned), "reload checkpoints"
            )
            self._owned.reload(stored)
        # paused or re-seeked: no fetch refreshed the cached watermarks meanwhile
        self._history.forget()
        targets = self._owned.seek_targets()
        for tp in targets:
            try:
                consumer.seek(tp)
            except KafkaException as exc:
                log.info("seek deferred", partition=tp.partition, error=str(exc))
        if targets and not self._paused:
            consumer.resume(targets)

    def _assign_manually(self, consumer: Consumer, partitions: Sequence[TP]) -> None:
        """No group: own ``partitions`` outright, each at its stored checkpoint + 1."""
        tps = list(partitions)
        stored = self._retry_until_done(
            lambda: self._processor.load_positions(tps), "load checkpoints"
        )
        self._owned = Assignment()
        consumer.assign(self._owned.own(tps, stored))
        self._assigned_at = time.monotonic()
        self._ready = True

    # -- rebalance callbacks (run inside consume()) ------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        stored = self._retry_until_done(
            lambda: self._processor.load_positions(tps), "load checkpoints"
        )
        assigned = self._owned.own(tps, stored)
        if self._cooperative:
            consumer.incremental_assign(assigned)
        else:
            consumer.assign(assigned)
        if self._paused and assigned:
            consumer.pause(assigned)  # partitions taken over while paused stay held
        self.stats.rebalances += 1
        self._assigned_at = time.monotonic()
        self._processor.new_epoch()
        self._history.forget()
        self._ready = True
        log.info(
            "partitions assigned",
            projection=self._processor.projection.slot,
            partitions=[
                f"{t}[{p}]@{'-' if o is None else o + 1}"
                for (t, p), o in ((tp, stored.get(tp)) for tp in tps)
            ],
        )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        self._owned.release(revoked)
        if self._pending is not None:
            self._pending.drop_partitions(revoked)
        self.stats.rebalances += 1
        self._assigned_at = time.monotonic()
        log.info(
            "partitions revoked",
            projection=self._processor.projection.slot,
            partitions=sorted(f"{t}[{p}]" for t, p in revoked),
        )

    # -- helpers ---------------------------------------------------------------------------
    def _retry_until_done(
        self, fn: Callable[[], T], what: str, *, deadline: float | None = None
    ) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except RetryableError as exc:
                if deadline is not None and time.monotonic() > deadline:
                    raise  # --timeout: give up with the last reason
                attempt += 1
                self.stats.retries += 1
                self._ready = False
                log.warning(f"cannot {what} yet, retrying", error=str(exc), attempt=attempt)
                if self._observer is not None:
                    self._observer.polled(self.snapshot())
                if self.stop.wait(self._backoff.delay(attempt)):
                    raise

    def _summary(self) -> dict[str, object]:
        s = self.stats
        return {
            "consumed": s.consumed,
            "applied": s.applied,
            "skipped_offset": s.skipped_offset,
            "stale": s.stale,
            "dead_lettered": s.dead_lettered,
            "batches": s.batches,
        }


_PAUSED_LAG_S = 5.0  # ListOffsets while paused for a retry, at most this often


def _watermarks(consumer: Consumer, tp: TP) -> tuple[int, int]:
    low, high = consumer.get_watermark_offsets(TopicPartition(tp[0], tp[1]), cached=True)
    return int(low), int(high)
