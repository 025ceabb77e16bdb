"""The consumer-group loop of one projection: poll, commit batches, follow rebalances.

``run_forever()`` serves the Deployment; ``drain()`` stops once every assigned
partition has caught up with the high watermark seen in fetch responses (the demo,
the tests and rebuilds). Both share one loop. On assignment each partition is
positioned at its stored checkpoint + 1 — the database, not Kafka, decides where
consumption resumes. Kafka commits follow each database commit for lag tools only.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from consumers.kafka.message import MessageLike
from consumers.runtime.batch import BatchProcessor, PreparedBatch
from consumers.runtime.history_guard import HistoryGuard, data_loss_error
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from projections import TopicPartition as TP
from schemas.errors import (
    BrokerUnavailable,
    FencedError,
    RetryableError,
)

__all__ = [
    "ControlAction",
    "LoopSettings",
    "ProjectionRunner",
    "RunObserver",
    "RunnerControl",
    "tune_gc_for_batches",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")


class RunObserver(Protocol):
    """Hooks the loop calls (metrics, health); both run on the loop's thread and must be quick."""

    def polled(self, runner: ProjectionRunner) -> None:
        """After every poll, committed or not (positions and cached watermarks are fresh)."""

    def committed(self, runner: ProjectionRunner, batch: PreparedBatch, seconds: float) -> None:
        """After a batch's transaction committed; ``seconds`` is that successful attempt."""


#: what a :class:`RunnerControl` asks of the loop: re-read checkpoints and re-seek
#: (a replay moved them), or stop because another generation became active (a swap)
ControlAction = Literal["reseek", "switch"]


class RunnerControl(Protocol):
    """Checked between batches (it throttles itself); see ``consumers.runtime.control``."""

    def check(self, runner: ProjectionRunner) -> ControlAction | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LoopSettings:
    batch_max_messages: int = 5_000
    batch_timeout_s: float = 0.05
    retry_initial_s: float = 0.2
    retry_max_s: float = 15.0
    cooperative: bool = True


class ProjectionRunner:
    """Runs one projection in one consumer group."""

    def __init__(
        self,
        *,
        consumer_conf: dict[str, Any],
        processor: BatchProcessor,
        loop: LoopSettings,
        stop: StopSignal | None = None,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        on_batch: Callable[[ProjectionRunner], None] | None = None,
        observer: RunObserver | None = None,
        assignment: Sequence[TP] | None = None,
        control: RunnerControl | None = None,
    ) -> None:
        self.processor = processor
        self.stats = processor.stats
        self.loop = loop
        self.stop = stop or StopSignal()
        self._conf = consumer_conf
        self._factory = consumer_factory
        self._on_batch = on_batch
        self.observer = observer
        #: last applied offset per owned partition (None: nothing applied yet)
        self.positions: dict[TP, int | None] = {}
        self._pending: PreparedBatch | None = None
        self._assigned_at = 0.0
        self._consumer: Consumer | None = None
        self.ready = False
        self.last_poll_at = 0.0
        #: manual assignment of exactly these partitions (a rebuild), instead of a group
        self._assignment = list(assignment) if assignment is not None else None
        self._control = control
        #: set when the loop ended because another generation became active
        self.switched = False
        self._history = HistoryGuard(processor.projection.slot)

    # -- public entry points -----------------------------------------------------------
    def run_forever(self) -> RunStats:
        return self._run(drain=False, timeout_s=None)

    def drain(self, *, timeout_s: float | None = None) -> RunStats:
        """Consume until caught up with the high watermark, then stop (DataLoss/timeout raise)."""
        return self._run(drain=True, timeout_s=timeout_s)

    # -- the loop ------------------------------------------------------------------------
    def _run(self, *, drain: bool, timeout_s: float | None) -> RunStats:
        self.stats.started_at = self.stats.started_at or time.time()
        tune_gc_for_batches()
        self._retry_until_done(self.processor.ensure_schema, "create tables")
        consumer = self._factory(self._conf)
        self._consumer = consumer
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        projection = self.processor.projection
        try:
            if self._assignment is not None:
                self._assign_manually(consumer, self._assignment)
            else:
                consumer.subscribe(
                    list(projection.topics),
                    on_assign=self._on_assign,
                    on_revoke=self._on_revoke,
                    on_lost=self._on_revoke,
                )
            log.info("consumer started", projection=projection.slot, topics=list(projection.topics))
            while not self.stop.is_set():
                action = self._control.check(self) if self._control is not None else None
                if action == "switch":
                    self.switched = True
                    break
                if action == "reseek":
                    self._reposition(consumer, reload=True)
                messages = consumer.consume(self.loop.batch_max_messages, self.loop.batch_timeout_s)
                self.last_poll_at = time.monotonic()
                batch = self.processor.prepare(self._without_errors(messages), self.positions)
                if batch:
                    self._commit(consumer, batch)
                if self.observer is not None:
                    self.observer.polled(self)
                if self._on_batch is not None:
                    self._on_batch(self)
                self._history.check(self.positions, lambda tp: _watermarks(consumer, tp))
                if drain and self._caught_up(consumer):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise BrokerUnavailable(f"drain did not catch up within {timeout_s}s")
        finally:
            self._consumer = None
            self.ready = False
            consumer.close()  # leaves the group at once: no wait for the session timeout
            self.processor.close()
            if self._control is not None:
                self._control.close()
            log.info("consumer closed", projection=projection.slot, **self._summary())
        return self.stats

    def _without_errors(self, messages: Sequence[Any]) -> list[MessageLike]:
        good: list[MessageLike] = []
        for msg in messages:
            err = msg.error()
            if err is None:
                good.append(msg)
                continue
            if (
                err.code() == KafkaError._AUTO_OFFSET_RESET
                or err.code() == KafkaError.OFFSET_OUT_OF_RANGE
            ):
                raise data_loss_error(
                    self.processor.projection.slot,
                    (msg.topic() or "", msg.partition() or 0),
                    f"no longer holds the offset after the stored checkpoint ({err.str()})",
                )
            if err.fatal():
                raise BrokerUnavailable(f"fatal consumer error: {err.str()}")
            log.warning("consumer error", error=err.str(), topic=msg.topic())
        return good

    def _commit(self, consumer: Consumer, batch: PreparedBatch) -> None:
        self._pending = batch
        attempt = 0
        paused = False
        try:
            while True:
                try:
                    started = time.perf_counter()
                    new = self.processor.commit(batch, self.positions)
                    seconds = time.perf_counter() - started
                    # before the re-seek in ``finally``: resume after this batch, not in it
                    self.positions.update({tp: o for tp, o in new.items() if tp in self.positions})
                    break
                except RetryableError as exc:
                    attempt += 1
                    self.stats.retries += 1
                    self.ready = False
                    delay = min(
                        self.loop.retry_max_s, self.loop.retry_initial_s * 2 ** (attempt - 1)
                    )
                    delay *= random.uniform(0.5, 1.0)  # jitter: replicas must not retry in step
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
                    self.processor.new_epoch()
                    log.warning("batch fenced off; reloading checkpoints", error=str(exc))
                    self._reposition(consumer, reload=True)
                    return
        finally:
            self._pending = None
            if paused:
                self._reposition(consumer, reload=False)
        self.ready = True
        if self.observer is not None:
            self.observer.committed(self, batch, seconds)
        offsets = [
            TopicPartition(t, p, off + 1) for (t, p), off in new.items() if (t, p) in self.positions
        ]
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # lag reporting only; the DB holds the truth
                log.info("kafka commit skipped", error=str(exc))

    def _keep_membership(self, consumer: Consumer, seconds: float) -> None:
        """Wait while polling, so heartbeats, rebalances and max.poll.interval stay healthy."""
        until = time.monotonic() + seconds
        while not self.stop.is_set() and (left := until - time.monotonic()) > 0:
            consumer.consume(self.loop.batch_max_messages, min(0.2, left))  # paused: discarded
            self.last_poll_at = time.monotonic()

    def _reposition(self, consumer: Consumer, *, reload: bool) -> None:
        """Seek every owned partition back to its checkpoint + 1 and resume fetching."""
        if reload and self.positions:
            stored = self._retry_until_done(
                lambda: self.processor.load_positions(list(self.positions)), "reload checkpoints"
            )
            self.positions = {tp: stored.get(tp) for tp in self.positions}
        # paused or re-seeked: no fetch refreshed the cached watermarks meanwhile
        self._history.forget()
        owned = [_at(tp, last) for tp, last in self.positions.items()]
        for tp in owned:
            try:
                consumer.seek(tp)
            except KafkaException as exc:
                log.info("seek deferred", partition=tp.partition, error=str(exc))
        if owned:
            consumer.resume(owned)

    def _assign_manually(self, consumer: Consumer, partitions: Sequence[TP]) -> None:
        """No group: own ``partitions`` outright, each at its stored checkpoint + 1."""
        tps = list(partitions)
        stored = self._retry_until_done(
            lambda: self.processor.load_positions(tps), "load checkpoints"
        )
        self.positions = {tp: stored.get(tp) for tp in tps}
        consumer.assign([_at(tp, last) for tp, last in self.positions.items()])
        self._assigned_at = time.monotonic()
        self.ready = True

    # -- rebalance callbacks (run inside consume()) ------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        stored = self._retry_until_done(
            lambda: self.processor.load_positions(tps), "load checkpoints"
        )
        assigned = []
        for tp in tps:
            self.positions[tp] = stored.get(tp)
            assigned.append(_at(tp, stored.get(tp)))
        if self.loop.cooperative:
            consumer.incremental_assign(assigned)
        else:
            consumer.assign(assigned)
        self.stats.rebalances += 1
        self._assigned_at = time.monotonic()
        self.processor.new_epoch()
        self._history.forget()
        self.ready = True
        log.info(
            "partitions assigned",
            projection=self.processor.projection.slot,
            partitions=[
                f"{t}[{p}]@{'-' if o is None else o + 1}"
                for (t, p), o in ((tp, stored.get(tp)) for tp in tps)
            ],
        )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        for tp in revoked:
            self.positions.pop(tp, None)
        if self._pending is not None:
            self._pending.drop_partitions(revoked)
        self.stats.rebalances += 1
        self._assigned_at = time.monotonic()
        log.info(
            "partitions revoked",
            projection=self.processor.projection.slot,
            partitions=sorted(f"{t}[{p}]" for t, p in revoked),
        )

    # -- helpers ---------------------------------------------------------------------------
    def _caught_up(self, consumer: Consumer) -> bool:
        if not self.positions:
            return False
        for (topic, partition), last in self.positions.items():
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
            if high < 0:
                return False  # no fetch response for this partition yet
            if (last + 1 if last is not None else 0) != high:
                return False  # behind; or ahead of the log, which the history guard reports
        return True

    def lag(self) -> dict[TP, int]:
        """Events behind the cached high watermark, per owned partition (-1: unknown yet)."""
        consumer = self._consumer
        out: dict[TP, int] = {}
        if consumer is None:
            return out
        for (topic, partition), last in list(self.positions.items()):
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
            out[(topic, partition)] = (
                -1 if high < 0 else max(0, high - (last + 1 if last is not None else 0))
            )
        return out

    def _retry_until_done(self, fn: Callable[[], T], what: str) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except RetryableError as exc:
                attempt += 1
                self.stats.retries += 1
                self.ready = False
                delay = min(self.loop.retry_max_s, self.loop.retry_initial_s * 2 ** (attempt - 1))
                log.warning(f"cannot {what} yet, retrying", error=str(exc), attempt=attempt)
                if self.stop.wait(delay * random.uniform(0.5, 1.0)):
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


def tune_gc_for_batches() -> None:
    """Keep the cyclic GC from re-scanning the process on every batch.

    A batch allocates ~20 objects per event (records, datetimes, UUIDs, rows), nearly
    all freed by reference counting when the batch ends. With CPython's default gen-0
    threshold (700) that still triggered ~1,800 collections and 14 full ones (~80 ms
    each, scanning SQLAlchemy's and every module's objects) per 200k events: ~20 % of
    the loop's time in the bench. Objects alive at start-up are frozen out of scans,
    and gen-0 runs every 100k net allocations instead: cycles are still collected.
    """
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 100_000), threshold[1], threshold[2])


def _at(tp: TP, last: int | None) -> TopicPartition:
    return TopicPartition(tp[0], tp[1], last + 1 if last is not None else OFFSET_BEGINNING)


def _watermarks(consumer: Consumer, tp: TP) -> tuple[int, int]:
    low, high = consumer.get_watermark_offsets(TopicPartition(tp[0], tp[1]), cached=True)
    return int(low), int(high)
