"""A consumer group that never hands out partitions: noticed, not waited out in silence.

A group member may hold no assignment for good while events wait: the group got stuck
(the embedded test broker leaves a group whose members came and went quickly in such a
state, see the README's broker notes), or every member is in the same spot. Readiness
already fails after ``readiness_grace_s`` without partitions; :class:`WedgeWatch` tells
the bad case apart from an idle spare replica: a runner is **wedged** when it has had
no assignment for longer than the grace, the projection's partitions hold events past
its checkpoints (lag > 0), and no consumer moved those checkpoints during that time.

The check runs on the loop's thread, first once the grace has passed (a normal
rebalance never pays for it), then at most every ``every_s`` while unassigned: one
metadata request, one watermark query per partition (2 s timeouts, so a broker away
delays the loop and a shutdown little) and one checkpoint read. It asks the broker for
the high watermark directly (no fetch response exists without an assignment).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from consumers.runtime.processor import BatchProcessor
from projections import TopicPartition as TP
from schemas.errors import RetryableError

__all__ = ["WedgeWatch"]

log = structlog.get_logger(__name__)

_TIMEOUT_S = 2.0  # per broker request; the loop waits for it


class WedgeWatch:
    """Whether a group-mode runner is wedged (see the module doc)."""

    def __init__(
        self,
        processor: BatchProcessor,
        *,
        grace_s: float,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.processor = processor
        self.grace_s = grace_s
        self.every_s = every_s
        self._clock = clock
        self._since: float | None = None  # start of the current partition-less spell
        self._checkpoints_at_start: dict[TP, int] | None = None
        self._next = 0.0
        #: events waiting past the checkpoints, as of the last check (0: none or unknown)
        self.lag = 0
        self.wedged = False

    def observe(self, consumer: Consumer, assigned: bool) -> bool:
        """Call after every poll; returns whether the runner is wedged now."""
        now = self._clock()
        if assigned:
            self._since, self._checkpoints_at_start = None, None
            self.lag, self.wedged = 0, False
            return False
        if self._since is None:  # nothing to tell before the grace is over
            self._since, self._next = now, now + self.grace_s
        if now < self._next:
            return self.wedged
        self._next = now + self.every_s
        try:
            partitions = self._partitions(consumer)
            checkpoints = self.processor.load_positions(partitions)
            highs = {tp: self._high(consumer, tp) for tp in partitions}
        except (KafkaException, RetryableError) as exc:
            log.info("wedge check skipped", error=str(exc))
            return self.wedged
        # Wedged needs two looks at the checkpoints, the later one finding them unmoved
        # (with a first look only, an idle spare beside a busy member would be wedged).
        fresh = self._checkpoints_at_start is None or checkpoints != self._checkpoints_at_start
        if fresh and self._checkpoints_at_start is not None:  # another member is consuming
            self._since = now
        if fresh:
            self._checkpoints_at_start = dict(checkpoints)
        self.lag = sum(
            max(0, high - (checkpoints[tp] + 1 if tp in checkpoints else 0))
            for tp, high in highs.items()
        )
        was = self.wedged
        self.wedged = not fresh and self.lag > 0 and now - self._since > self.grace_s
        if self.wedged and not was:
            log.warning(
                "consumer wedged: no partitions assigned while events wait",
                projection=self.processor.projection.slot,
                unassigned_s=round(now - self._since, 1),
                lag=self.lag,
            )
        return self.wedged

    def _partitions(self, consumer: Consumer) -> Sequence[TP]:
        out: list[TP] = []
        for topic in self.processor.projection.topics:
            meta = consumer.list_topics(topic, timeout=_TIMEOUT_S).topics.get(topic)
            if meta is not None and meta.error is None:
                out += [(topic, p) for p in sorted(meta.partitions)]
        return out

    @staticmethod
    def _high(consumer: Consumer, tp: TP) -> int:
        # Not cached: without an assignment no fetch response carries it. (Brokers that
        # answer "latest" per batch undercount here; the lag > 0 test stays sound.)
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(tp[0], tp[1]), timeout=_TIMEOUT_S, cached=False
        )
        return int(high)
