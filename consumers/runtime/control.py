"""How a running consumer hears about replays and swaps without being restarted.

Between batches (at most once per ``interval_s``) the runner asks its control to read
the projection's ``projection_versions`` row:

* ``epoch`` moved: ``replay`` rewound the stored checkpoints, so re-read them and
  re-seek (``reseek``); the replay marks say which events are re-applications.
* ``active_generation`` is no longer the runner's: a rebuild or rollback swapped the
  generation queries read, so stop and let :func:`run_live` start the active one
  (``switch``); the new generation's checkpoints say where it continues.

It also keeps a heartbeat row, so ``status`` can tell live, rebuilding and stopped.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from consumers.runtime.runner import ControlAction, ProjectionRunner, StopSignal
from consumers.runtime.stats import RunStats
from consumers.settings.models import Settings
from projections import create_projection, database_errors, make_engine
from projections.generations.versions import VersionStore, active_generation
from schemas.errors import ProjectionistError, RetryableError

__all__ = ["GenerationControl", "default_instance", "resolve_generation", "run_live"]

log = structlog.get_logger(__name__)


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class GenerationControl:
    """Watches the version row for one runner: epoch (replay) and active generation (swap)."""

    def __init__(
        self,
        *,
        live: bool = True,
        instance: str | None = None,
        interval_s: float = 1.0,
        heartbeat_s: float = 5.0,
        versions: VersionStore | None = None,
    ) -> None:
        self.live = live
        self.instance = instance or default_instance()
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.versions = versions or VersionStore()
        self._epoch: int | None = None
        self._next_check = 0.0
        self._next_beat = 0.0
        self._engine: Engine | None = None
        self._slot = ""

    def check(self, runner: ProjectionRunner) -> ControlAction | None:
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self.interval_s
        processor = runner.processor
        projection = processor.projection
        self._engine, self._slot = processor.engine, projection.slot
        try:
            with database_errors(), processor.engine.begin() as conn:
                if self._epoch is None and self.live:
                    row = self.versions.ensure(conn, projection)  # row and views on first run
                else:
                    row = self.versions.read(conn, projection.name)
                if now >= self._next_beat:
                    state = "live" if self.live else "rebuilding"
                    self.versions.heartbeat(conn, projection.slot, self.instance, state)
                    self._next_beat = now + self.heartbeat_s
                moved = self._epoch is not None and row.epoch != self._epoch
                if self._epoch is None or moved:
                    processor.replay_marks = self.versions.replay_marks(conn, projection.slot)
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
        return None

    def close(self) -> None:
        if self._engine is None:
            return
        try:
            with database_errors(), self._engine.begin() as conn:
                self.versions.forget(conn, self._slot, self.instance)
        except (ProjectionistError, SQLAlchemyError) as exc:  # best effort: it goes stale anyway
            log.info("heartbeat not removed", error=str(exc))


def resolve_generation(settings: Settings, name: str) -> int:
    """The generation queries read now (the code's version before any rebuild)."""
    default = create_projection(name).version
    engine = make_engine(settings.database_url_value())
    try:
        with database_errors(), engine.connect() as conn:
            return active_generation(conn, name, default)
    finally:
        engine.dispose()


def run_live(
    settings: Settings,
    name: str,
    *,
    stop: StopSignal,
    drain: bool = False,
    timeout_s: float | None = None,
    build: Callable[..., ProjectionRunner] | None = None,
) -> RunStats:
    """Run the active generation; after a swap or rollback, continue with the new one."""
    from consumers.app import build_runner

    make = build or build_runner
    total = RunStats()
    while True:
        generation = resolve_generation(settings, name)
        runner = make(settings, name, stop=stop, generation=generation, control=GenerationControl())
        try:
            stats = runner.drain(timeout_s=timeout_s) if drain else runner.run_forever()
        finally:
            runner.processor.engine.dispose()
        _add(total, stats)
        # per generation, so a test (or an operator) can see what was consumed after a swap
        slot = runner.processor.projection.slot
        total.extra[f"consumed_{slot}"] = total.extra.get(f"consumed_{slot}", 0) + stats.consumed
        if not runner.switched or stop.is_set():
            return total


def _add(total: RunStats, more: RunStats) -> None:
    for field in RunStats.__dataclass_fields__:
        value = getattr(more, field)
        if field == "started_at":
            total.started_at = total.started_at or more.started_at
        elif field == "last_applied_at":
            total.last_applied_at = max(total.last_applied_at, more.last_applied_at)
        elif field == "extra":
            for key, n in more.extra.items():
                total.extra[key] = total.extra.get(key, 0) + n
        elif isinstance(value, int):
            setattr(total, field, getattr(total, field) + value)
