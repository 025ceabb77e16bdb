"""How a running consumer hears about replays and swaps without being restarted.

Between batches (at most once per ``interval_s``) the runner asks its control to read
the projection's ``projection_versions`` row:

* ``epoch`` moved: ``replay`` rewound the stored checkpoints, so re-read them and
  re-seek (``reseek``); the replay marks say which events are re-applications.
* ``active_generation`` is no longer the runner's: a rebuild or rollback swapped the
  generation queries read, so stop and let ``consumers.operations.live.run_live``
  start the active one
  (``switch``); the new generation's checkpoints say where it continues.

* a ``projection_pauses`` row appeared or went (``projectionist pause`` / ``resume``):
  hold fetching while keeping the assignment (``pause``), or seek back to checkpoint + 1
  and go on (``resume``). Only live consumers pause; a rebuild's runner ignores it.

It also keeps a heartbeat row (state live, paused or rebuilding) and the partitions the
process owns, so ``status`` can tell the states apart and name each partition's owner.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Collection

import structlog
from sqlalchemy.exc import SQLAlchemyError

from consumers.runtime.hooks import ControlAction
from consumers.runtime.processor import BatchProcessor
from projections import TopicPartition, database_errors
from projections.generations.heartbeats import HeartbeatStore
from projections.generations.pauses import PauseStore
from projections.generations.replay_marks import ReplayMarkStore
from projections.generations.versions import VersionStore
from schemas.errors import ProjectionistError, RetryableError

__all__ = ["GenerationControl", "default_instance"]

log = structlog.get_logger(__name__)


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class GenerationControl:
    """Watches the version row for one processor: epoch (replay) and active generation (swap)."""

    def __init__(
        self,
        processor: BatchProcessor,
        *,
        live: bool = True,
        instance: str | None = None,
        interval_s: float = 1.0,
        heartbeat_s: float = 5.0,
        versions: VersionStore | None = None,
    ) -> None:
        self.processor = processor
        self.live = live
        self.instance = instance or default_instance()
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.versions = versions or VersionStore()
        self.heartbeats = HeartbeatStore()
        self.replay_marks = ReplayMarkStore()
        self.pauses = PauseStore()
        #: the pause row as last read (live consumers only): the loop holds while it is set
        self.paused = False
        self._owned: frozenset[TopicPartition] | None = None
        self._wedged = False
        self._epoch: int | None = None
        self._next_check = 0.0
        self._next_beat = 0.0
        self._checked = False

    def check(
        self, owned: Collection[TopicPartition] = (), *, wedged: bool = False
    ) -> ControlAction | None:
        """``owned``: the partitions the runner owns now (recorded for ``status``);
        ``wedged``: its group holds it without partitions (its heartbeat says so)."""
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self.interval_s
        processor = self.processor
        projection = processor.projection
        self._checked = True
        try:
            with database_errors(), processor.engine.begin() as conn:
                if self._epoch is None and self.live:
                    row = self.versions.ensure(conn, projection)  # row and views on first run
                else:
                    row = self.versions.read(conn, projection.name)
                paused = self.live and self.pauses.read(conn, projection.name) is not None
                owning = frozenset(owned)
                if (
                    now >= self._next_beat
                    or paused != self.paused
                    or owning != self._owned
                    or wedged != self._wedged
                ):
                    state = (
                        "paused"
                        if paused
                        else "rebuilding"
                        if not self.live
                        else "wedged"
                        if wedged
                        else "live"
                    )
                    self._wedged = wedged
                    self.heartbeats.beat(conn, projection.slot, self.instance, state)
                    self.heartbeats.own(conn, projection.slot, self.instance, owning)
                    self._owned = owning
                    self._next_beat = now + self.heartbeat_s
                moved = self._epoch is not None and row.epoch != self._epoch
                if self._epoch is None or moved:
                    processor.replay_marks = self.replay_marks.load(conn, projection.slot)
        except RetryableError as exc:
            log.warning("cannot read the control row yet", error=str(exc))
            return None
        self._epoch = row.epoch
        if self.live and row.active_generation != projection.generation:
            log.info(
                "another generation is active; handing over",
                projection=projection.slot,
                active=row.active_generation,
            )
            return "switch"
        if moved:
            log.info("checkpoints moved by a replay; re-seeking", projection=projection.slot)
            return "reseek"
        if paused != self.paused:
            self.paused = paused
            log.info("paused by an operator" if paused else "resumed", projection=projection.slot)
            return "pause" if paused else "resume"
        return None

    def close(self) -> None:
        if not self._checked:
            return
        try:
            with database_errors(), self.processor.engine.begin() as conn:
                self.heartbeats.forget(conn, self.processor.projection.slot, self.instance)
        except (ProjectionistError, SQLAlchemyError) as exc:  # best effort: it goes stale anyway
            log.info("heartbeat not removed", error=str(exc))
