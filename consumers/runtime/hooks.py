"""The seams of the consumer loop (:mod:`consumers.runtime.runner`): what it calls after
each poll and commit (metrics, health) and what it asks between batches (replays,
swaps, pauses)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal, Protocol

from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.transaction import CommitResult
from projections import TopicPartition as TP

__all__ = ["ControlAction", "RunObserver", "RunnerControl"]


class RunObserver(Protocol):
    """Hooks the loop calls (metrics, health); both run on the loop's thread and must be quick."""

    def polled(self, snapshot: RunnerSnapshot) -> None:
        """After every poll, committed or not, and while backing off after a failure."""

    def committed(self, snapshot: RunnerSnapshot, commit: CommitResult, seconds: float) -> None:
        """After a batch's transaction committed; ``seconds`` is that successful attempt."""


#: what a :class:`RunnerControl` asks of the loop: re-read checkpoints and re-seek
#: (a replay moved them), stop because another generation became active (a swap), hold
#: fetching while keeping the assignment (an operator paused it), or go on (resumed)
ControlAction = Literal["reseek", "switch", "pause", "resume"]


class RunnerControl(Protocol):
    """Checked between batches (it throttles itself); see ``consumers.runtime.control``."""

    def check(
        self, owned: Collection[TP] = (), *, wedged: bool = False
    ) -> ControlAction | None: ...
    def close(self) -> None: ...
