"""Rebuild a projection online: a new generation from the beginning, then an atomic swap.

1. Read the watermarks of every partition; refuse when a topic no longer holds its
   whole history (low watermark > 0) unless ``allow_partial``.
2. Create the next generation's tables (``<table>_v<N>``) beside the active ones, which
   keep serving queries and keep being written by the live consumers.
3. Drain the topics into them with the ordinary runner on a *manual assignment* (no
   group join) and large batches, with ``live=False`` so side effects stay silent.
   Checkpoints are written under ``<name>_v<N>`` in each batch, as always.
4. Caught up with the high watermark: swap the active-generation pointer and the
   views in one transaction. Live consumers see the new generation on their next
   control check and continue it from the checkpoints the rebuild left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Engine, inspect

from consumers.app import projection_registry
from consumers.kafka.watermarks import Watermarks, WatermarkSource, partial_history
from consumers.operations.rebuild_workers import (
    drain_in_workers,
    rebuild_runner,
    share_partitions,
)
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stop import StopSignal
from consumers.settings.concerns import DatabaseSettings
from consumers.settings.models import Settings
from projections import (
    CheckpointStore,
    Projection,
    TopicPartition,
    database_errors,
    make_engine,
)
from projections.generations.heartbeats import HeartbeatStore
from projections.generations.versions import VersionStore, active_generation
from projections.progress.dead_letter_log import DeadLetterLog
from projections.registry import ProjectionRegistry
from schemas.errors import ConfigurationError, DataLossError

__all__ = [
    "HistoryIncomplete",
    "RebuildResult",
    "generations_made",
    "prepare_current",
    "run_cleanup",
    "run_rebuild",
    "run_rollback",
]

log = structlog.get_logger(__name__)

#: a heartbeat older than this belongs to a process that died without saying so
#: (consumers beat every 5 s)
STALE_AFTER_S = 15.0


class HistoryIncomplete(DataLossError):
    """A topic no longer holds its whole history: a rebuild would miss events."""


@dataclass(slots=True)
class RebuildResult:
    projection: str
    previous_generation: int
    generation: int
    events: int = 0
    seconds: float = 0.0
    swapped: bool = False
    dropped_previous: bool = False
    #: per partition, the last offset the rebuild applied: live consumers go on from +1
    handed_over_at: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "projection": self.projection,
            "previous_generation": self.previous_generation,
            "generation": self.generation,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s, 1),
            "swapped": self.swapped,
            "dropped_previous": self.dropped_previous,
            "handed_over_at": self.handed_over_at,
        }


def prepare_current(engine: Engine, projections: ProjectionRegistry, name: str) -> Projection:
    """The active generation, with its tables, version row and views in place."""
    default = projections.create(name).version
    with database_errors(), engine.begin() as conn:
        generation = active_generation(conn, name, default)
        current = projections.create(name, generation=generation)
        CheckpointStore().create(conn)
        DeadLetterLog().create(conn)
        # not create_tables(): a table that needs a rebuild to change must not stop one
        current.metadata.create_all(conn)
        VersionStore().ensure(conn, current)
    return current


def refuse_partial(name: str, marks: dict[TopicPartition, Watermarks]) -> None:
    partial = partial_history(marks)
    if partial:
        where = ", ".join(f"{t}[{p}] starts at offset {low}" for (t, p), low in partial.items())
        raise HistoryIncomplete(
            f"cannot rebuild {name}: the topic no longer holds its full history ({where}). "
            "Events before those offsets were deleted by retention; a rebuild would silently "
            "miss them. Pass --allow-partial to rebuild from what is left."
        )


def run_rebuild(
    settings: Settings,
    name: str,
    *,
    watermarks: WatermarkSource,
    allow_partial: bool = False,
    drop_previous: bool = False,
    batch_max_messages: int = 10_000,
    workers: int = 1,
    stop: StopSignal | None = None,
    on_start: Callable[[dict[TopicPartition, Watermarks]], None] | None = None,
    on_batch: Callable[[RunnerSnapshot], None] | None = None,
    drop_wait_s: float = 30.0,
    projections: ProjectionRegistry | None = None,
    worker_setup: Callable[[Settings], None] | None = None,
) -> RebuildResult:
    """Build the next generation of ``name``, swap it in, optionally drop the previous one.

    ``workers`` > 1 drains the partitions in that many processes (at most one per
    partition; :mod:`consumers.operations.rebuild_workers`), which build their projections
    from ``settings``, not from ``projections``, after ``worker_setup(settings)``."""
    registry = projections or projection_registry(settings)
    engine = make_engine(settings.database.url())
    versions = VersionStore()
    try:
        current = prepare_current(engine, registry, name)
        marks = watermarks.watermarks(current.topics)
        if not allow_partial:
            refuse_partial(name, marks)
        with database_errors(), engine.begin() as conn:
            row = versions.read(conn, name, lock=True)
            if row.rebuilding_generation is not None and HeartbeatStore().instances(
                conn, f"{name}_v{row.rebuilding_generation}", fresh_s=STALE_AFTER_S
            ):
                raise ConfigurationError(
                    f"a rebuild of {name} (generation {row.rebuilding_generation}) is running"
                )
            generation = max(current.version, row.highest_generation + 1)
            target = registry.create(name, generation=generation)
            for table in reversed(target.tables()):  # leftovers of an interrupted rebuild
                table.drop(conn, checkfirst=True)
            target.create_tables(conn)
            CheckpointStore().reset(conn, target.slot, dict.fromkeys(marks))
            versions.begin_rebuild(conn, name, generation)
        result = RebuildResult(name, current.generation, generation)
        log.info("rebuild started", projection=target.slot, partitions=len(marks))
        if on_start is not None:
            on_start(marks)
        shares = share_partitions({tp: m.high - m.low for tp, m in marks.items()}, workers)
        started = time.monotonic()
        try:
            stopped, consumed, positions = _drain(
                settings,
                name,
                generation,
                shares,
                batch_max_messages=batch_max_messages,
                stop=stop,
                on_batch=on_batch,
                registry=registry,
                setup=worker_setup,
            )
        except BaseException:
            _abandon(engine, versions, name)
            raise
        result.seconds = time.monotonic() - started
        result.events = consumed
        if stopped:
            with database_errors(), engine.begin() as conn:
                versions.end_rebuild(conn, name)
            return result  # interrupted: the active generation is untouched
        with database_errors(), engine.begin() as conn:
            versions.swap(conn, target)
        result.swapped = True
        result.handed_over_at = {
            f"{t}[{p}]": off for (t, p), off in sorted(positions.items()) if off is not None
        }
        log.info("rebuild swapped in", slot=target.slot, **result.as_dict())
        if drop_previous:
            result.dropped_previous = drop_when_idle(engine, current, wait_s=drop_wait_s)
        return result
    finally:
        engine.dispose()


def _drain(
    settings: Settings,
    name: str,
    generation: int,
    shares: list[list[TopicPartition]],
    *,
    batch_max_messages: int,
    stop: StopSignal | None,
    on_batch: Callable[[RunnerSnapshot], None] | None,
    registry: ProjectionRegistry,
    setup: Callable[[Settings], None] | None,
) -> tuple[bool, int, dict[TopicPartition, int | None]]:
    """Drain the new generation's partitions: (stopped, events consumed, last offsets)."""
    if len(shares) > 1:
        drained = drain_in_workers(
            settings,
            name,
            generation=generation,
            shares=shares,
            batch_max_messages=batch_max_messages,
            stop=stop or StopSignal(),
            on_batch=on_batch,
            setup=setup,
        )
        return drained.stopped, drained.stats.consumed, drained.positions
    runner = rebuild_runner(
        settings,
        name,
        generation,
        shares[0],
        batch_max_messages=batch_max_messages,
        stop=stop,
        on_batch=on_batch,
        projections=registry,
    )
    consumed = runner.drain().consumed
    return runner.stop.is_set(), consumed, dict(runner.snapshot().positions)


def _abandon(engine: Engine, versions: VersionStore, name: str) -> None:
    """A failed drain: clear the rebuilding mark so a rerun need not wait out the
    heartbeats (the next rebuild drops the half-built tables). Best effort: the
    database may be the failure."""
    try:
        with database_errors(), engine.begin() as conn:
            versions.end_rebuild(conn, name)
    except Exception:  # noqa: BLE001 - the drain's own error is the one to report
        log.warning("could not clear the rebuilding mark", projection=name)


def drop_when_idle(engine: Engine, old: Projection, *, wait_s: float) -> bool:
    """Drop ``old``'s generation once no live consumer of it is left (they switch within
    seconds of a swap); False when one still beats after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        with database_errors(), engine.begin() as conn:
            busy = HeartbeatStore().instances(conn, old.slot, fresh_s=STALE_AFTER_S)
            if not busy:
                VersionStore().drop_generation(conn, old)
                return True
        if time.monotonic() > deadline:
            log.warning("previous generation still in use; not dropped", projection=old.slot)
            return False
        time.sleep(0.5)


def run_rollback(
    database: DatabaseSettings, projections: ProjectionRegistry, name: str
) -> tuple[int, int]:
    """Swap back to the previous generation; return (generation left, generation active)."""
    engine = make_engine(database.url())
    versions = VersionStore()
    try:
        with database_errors(), engine.begin() as conn:
            versions.create(conn)
            row = versions.read(conn, name, lock=True)
            if row.previous_generation is None:
                raise ConfigurationError(f"{name} has no previous generation to roll back to")
            previous = projections.create(name, generation=row.previous_generation)
            missing = [t.name for t in previous.tables() if not inspect(conn).has_table(t.name)]
            if missing:
                raise ConfigurationError(
                    f"cannot roll back {name}: {', '.join(missing)} no longer exist(s)"
                )
            versions.swap(conn, previous)
        return row.active_generation, previous.generation
    finally:
        engine.dispose()


def run_cleanup(
    database: DatabaseSettings, projections: ProjectionRegistry, name: str
) -> list[int]:
    """Drop every generation but the active one (refusing those a process still writes).

    The consumer groups of retired generations are the caller's (:func:`retired_slots`)."""
    engine = make_engine(database.url())
    versions = VersionStore()
    dropped = []
    try:
        with database_errors(), engine.begin() as conn:
            versions.create(conn)
            row = versions.read(conn, name, lock=True)
            for generation in range(1, row.highest_generation + 1):
                if generation == row.active_generation:
                    continue
                old = projections.create(name, generation=generation)
                if not any(inspect(conn).has_table(t.name) for t in old.tables()):
                    continue
                busy = HeartbeatStore().instances(conn, old.slot, fresh_s=STALE_AFTER_S)
                if busy:
                    raise ConfigurationError(
                        f"{old.slot} is still in use by {', '.join(sorted(busy))}; "
                        "wait for it to finish or stop it first"
                    )
                versions.drop_generation(conn, old)
                dropped.append(generation)
        return dropped
    finally:
        engine.dispose()


def generations_made(
    database: DatabaseSettings, projections: ProjectionRegistry, name: str
) -> list[Projection]:
    """Every generation this projection has had (1 … highest): whose per-generation
    consumer groups (rebuilds, and the live groups of releases before the
    generation-independent one) are retired once a rebuild has finished."""
    engine = make_engine(database.url())
    try:
        with database_errors(), engine.begin() as conn:
            VersionStore().create(conn)
            highest = VersionStore().read(conn, name).highest_generation
    finally:
        engine.dispose()
    return [projections.create(name, generation=g) for g in range(1, highest + 1)]
