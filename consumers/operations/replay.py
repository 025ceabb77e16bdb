"""Rewind a live projection to a point in time, without stopping its consumers.

The plan: for each partition, the first offset to re-apply (from ``offsets_for_times``,
explicit offsets, or the beginning). Applying it is one database transaction: the
checkpoints move back, replay marks record how far each partition had got (events up
to there are re-applications: ``Event.live`` is False, so side effects stay silent)
and the projection's ``epoch`` goes up. Running consumers see the epoch on their next
control check (or lose their next compare-and-set), re-read the checkpoints and seek.

Only projections whose writes are idempotent under replay may be rewound; the others
(counters, sums) would count twice and need ``projectionist rebuild``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from consumers.kafka.watermarks import Watermarks, WatermarkSource
from consumers.operations.live import resolve_generation
from consumers.settings.concerns import DatabaseSettings
from projections import (
    CheckpointStore,
    Projection,
    TopicPartition,
    database_errors,
    make_engine,
)
from projections.generations.replay_marks import ReplayMark, ReplayMarkStore
from projections.generations.versions import VersionStore
from projections.registry import ProjectionRegistry
from schemas.errors import ConfigurationError
from schemas.utc import as_utc

__all__ = [
    "PartitionPlan",
    "ReplayPlan",
    "ReplayRefused",
    "apply_replay",
    "parse_point",
    "plan_replay",
]

Point = datetime | dict[tuple[str | None, int], int] | Literal["beginning"]
TimeIndex = Callable[[Sequence[TopicPartition], int], Mapping[TopicPartition, int | None]]


class ReplayRefused(ConfigurationError):
    """The projection's writes are not idempotent under replay: rebuild it instead."""


def parse_point(value: str) -> Point:
    """``beginning``, an ISO-8601 time (naive means UTC), or offsets ``[topic:]P=OFFSET,…``."""
    text = value.strip()
    if text == "beginning":
        return "beginning"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return as_utc(when)
    offsets: dict[tuple[str | None, int], int] = {}
    try:
        for item in text.split(","):
            where, offset = item.split("=")
            topic, _, partition = where.strip().rpartition(":")
            offsets[(topic or None, int(partition))] = int(offset)
    except ValueError:
        raise ConfigurationError(
            f"--from {value!r}: expected an ISO-8601 time (2026-01-31T12:00:00Z), "
            "'beginning', or offsets like 0=120,1=80 or blog.posts:0=120"
        ) from None
    return offsets


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    topic: str
    partition: int
    checkpoint: int | None  # last applied offset now
    start: int  # first offset to apply again
    stop: int | None  # with --to: first offset not applied again
    high: int

    @property
    def events(self) -> int:
        end = self.checkpoint + 1 if self.checkpoint is not None else self.start
        if self.stop is not None:
            end = min(end, self.stop)
        return max(0, end - self.start)

    def as_dict(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "checkpoint": self.checkpoint,
            "rewind_to": self.start,
            "stop_at": self.stop,
            "high_watermark": self.high,
            "events_to_reapply": self.events,
        }


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    projection: str
    generation: int
    slot: str
    partitions: list[PartitionPlan]

    @property
    def events(self) -> int:
        return sum(p.events for p in self.partitions)

    def as_dict(self) -> dict[str, object]:
        return {
            "projection": self.projection,
            "generation": self.generation,
            "slot": self.slot,
            "events_to_reapply": self.events,
            "partitions": [p.as_dict() for p in self.partitions],
        }


def check_replayable(projection: Projection) -> None:
    if not projection.idempotent_replay:
        raise ReplayRefused(
            f"{projection.name} cannot be replayed in place: its writes are not idempotent "
            "under replay (counters or sums would count events twice). Run "
            f"`projectionist rebuild {projection.name}` instead."
        )


def plan_replay(
    database: DatabaseSettings,
    projections: ProjectionRegistry,
    name: str,
    *,
    start: Point,
    until: datetime | None,
    watermarks: WatermarkSource,
    time_index: TimeIndex,
) -> ReplayPlan:
    generation = resolve_generation(database, projections, name)
    projection = projections.create(name, generation=generation)
    check_replayable(projection)
    marks = watermarks.watermarks(projection.topics)
    engine = make_engine(database.url(), read_only=True)
    try:
        with database_errors(), engine.connect() as conn:
            stored = CheckpointStore().load(conn, projection.slot)
    finally:
        engine.dispose()
    tps = sorted(marks)
    starts = _resolve(start, tps, marks, projection, time_index)
    stops = (
        _resolve(until, tps, marks, projection, time_index)
        if until is not None
        else dict.fromkeys(tps)
    )
    plans = []
    for tp in tps:
        last = stored.get(tp)
        next_offset = last + 1 if last is not None else marks[tp].low
        # never forward: a replay re-applies, it does not skip what was not applied yet
        wanted = starts.get(tp)
        first = min(max(next_offset if wanted is None else wanted, marks[tp].low), next_offset)
        stop = stops.get(tp)
        if stop is not None:
            stop = max(stop, first)
        plans.append(PartitionPlan(tp[0], tp[1], last, first, stop, marks[tp].high))
    return ReplayPlan(name, projection.generation, projection.slot, plans)


def _resolve(
    point: Point,
    tps: list[TopicPartition],
    marks: Mapping[TopicPartition, Watermarks],
    projection: Projection,
    time_index: TimeIndex,
) -> dict[TopicPartition, int | None]:
    if point == "beginning":
        return {tp: marks[tp].low for tp in tps}
    if isinstance(point, datetime):
        found = time_index(tps, int(point.timestamp() * 1000))
        return {tp: marks[tp].high if found.get(tp) is None else found[tp] for tp in tps}
    out: dict[TopicPartition, int | None] = {}
    for (given, partition), offset in point.items():
        if given is None and len(projection.topics) != 1:
            raise ConfigurationError("name the topic of each offset: topic:partition=offset")
        topic = given if given is not None else projection.topics[0]
        if (topic, partition) not in marks:
            raise ConfigurationError(
                f"{topic}[{partition}] is not a partition of {projection.name}"
            )
        out[(topic, partition)] = offset
    return out


def apply_replay(
    database: DatabaseSettings, projections: ProjectionRegistry, plan: ReplayPlan
) -> int:
    """Move the checkpoints back in one transaction; return the new epoch consumers watch."""
    engine = make_engine(database.url())
    store = CheckpointStore()
    versions = VersionStore()
    projection = projections.create(plan.projection, generation=plan.generation)
    try:
        with database_errors(), engine.begin() as conn:
            store.create(conn)
            projection.create_tables(conn)
            versions.ensure(conn, projection)
            t = store.table
            locked = select(t.c.topic, t.c.partition, t.c.last_offset).where(
                t.c.projection == plan.slot
            )
            if conn.dialect.name == "postgresql":
                locked = locked.with_for_update()  # running consumers wait for us, then re-seek
            current = {(r.topic, r.partition): r.last_offset for r in conn.execute(locked)}
            moves: dict[TopicPartition, int | None] = {}
            marks: dict[TopicPartition, ReplayMark] = {}
            for p in plan.partitions:
                tp = (p.topic, p.partition)
                last = current.get(tp)
                if last is None or p.start > last:
                    continue  # nothing applied there yet, or nothing to rewind
                moves[tp] = p.start - 1 if p.start > 0 else None
                skip = p.stop if p.stop is not None and p.stop <= last else None
                marks[tp] = ReplayMark(replayed_through=last, skip_from=skip)
            store.reset(conn, plan.slot, moves)
            ReplayMarkStore().set(conn, plan.slot, marks)
            return versions.bump_epoch(conn, plan.projection)
    finally:
        engine.dispose()
