"""What a running loop looks like from outside: a plain, immutable snapshot.

The runner builds one after every poll (and while it backs off) and hands it to its
observer and hooks; probes, scrapes and progress bars read snapshots, never the runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from consumers.runtime.stats import RunStats
from projections import TopicPartition

__all__ = ["RunnerSnapshot"]


@dataclass(frozen=True, slots=True)
class RunnerSnapshot:
    #: the projection slot the runner writes (``blog_v1``)
    slot: str = ""
    #: last applied offset per owned partition (None: nothing applied yet)
    positions: Mapping[TopicPartition, int | None] = field(default_factory=dict)
    #: events behind the cached high watermark per owned partition (-1: not known yet)
    lag: Mapping[TopicPartition, int] = field(default_factory=dict)
    #: high watermark of the last fetch response per owned partition (known ones only)
    high_watermarks: Mapping[TopicPartition, int] = field(default_factory=dict)
    #: False while a failed transaction is retried, and before the first assignment
    ready: bool = False
    #: ``time.monotonic()`` of the last poll (0: never polled)
    last_poll_at: float = 0.0
    #: ``time.monotonic()`` of the last assignment change
    assigned_at: float = 0.0
    #: the loop ended because another generation became active
    switched: bool = False
    #: an operator paused the projection (``projectionist pause``): polling, not fetching
    paused: bool = False
    #: no assignment past the readiness grace while events wait and nobody consumes
    #: them (``consumers.runtime.wedge``)
    wedged: bool = False
    #: events past the checkpoints while unassigned, as of the last wedge check
    unassigned_lag: int = 0
    #: a copy of the run's books at that moment
    stats: RunStats = field(default_factory=RunStats)
