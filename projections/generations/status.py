"""What the database knows about each projection: generations, checkpoints, who is running.

The broker side (high watermarks, dead letters) is added by ``consumers.operations.status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, MetaData, inspect, select

from projections.generations.heartbeats import HeartbeatStore
from projections.generations.pauses import Pause, PauseStore
from projections.generations.versions import VersionRow, VersionStore
from projections.progress.checkpoints import TopicPartition, checkpoints_table
from schemas.errors import ConfigurationError
from schemas.utc import as_utc

__all__ = ["GenerationStatus", "ProjectionStatus", "age_s", "read_status"]

#: consumers beat every 5 s; three missed beats mean the process is gone
FRESH_S = 15.0
_CHECKPOINTS = checkpoints_table(MetaData())


@dataclass(slots=True)
class GenerationStatus:
    generation: int
    slot: str
    #: active (queries read it), previous (kept for rollback) or rebuilding
    role: str
    #: live / paused / rebuilding / stopped, from the heartbeats of running processes
    state: str
    instances: list[str] = field(default_factory=list)
    #: the process owning each partition, as of its last heartbeat
    owners: dict[TopicPartition, str] = field(default_factory=dict)
    #: last applied offset and when it was applied, per partition
    checkpoints: dict[TopicPartition, tuple[int, datetime]] = field(default_factory=dict)


@dataclass(slots=True)
class ProjectionStatus:
    projection: str
    version: VersionRow | None
    generations: list[GenerationStatus]
    #: set while an operator has paused the projection
    pause: Pause | None = None


def read_status(conn: Connection, name: str, default_generation: int) -> ProjectionStatus:
    """Generations of ``name`` that matter now (active, previous, rebuilding) and their state."""
    tables = set(inspect(conn).get_table_names())
    versions = VersionStore()
    row = _version_row(conn, versions, name) if "projection_versions" in tables else None
    active = row.active_generation if row is not None else default_generation
    roles: list[tuple[int, str]] = [(active, "active")]
    if row is not None and row.previous_generation is not None:
        roles.append((row.previous_generation, "previous"))
    if row is not None and row.rebuilding_generation is not None:
        roles.append((row.rebuilding_generation, "rebuilding"))
    out = []
    for generation, role in roles:
        slot = f"{name}_v{generation}"
        beats = (
            HeartbeatStore().instances(conn, slot, fresh_s=FRESH_S)
            if "projection_heartbeats" in tables
            else {}
        )
        states = set(beats.values())
        state = (
            "rebuilding"
            if "rebuilding" in states
            else "wedged"  # a live process whose group gives it no partitions while events wait
            if "wedged" in states
            else "live"
            if "live" in states
            else "paused"
            if states
            else "stopped"
        )
        status = GenerationStatus(generation, slot, role, state, sorted(beats))
        if "projection_owners" in tables:
            status.owners = HeartbeatStore().owners(conn, slot, fresh_s=FRESH_S)
        if "projection_checkpoints" in tables:
            t = _CHECKPOINTS
            for r in conn.execute(
                select(t.c.topic, t.c.partition, t.c.last_offset, t.c.updated_at).where(
                    t.c.projection == slot
                )
            ):
                status.checkpoints[(r.topic, r.partition)] = (r.last_offset, as_utc(r.updated_at))
        out.append(status)
    return ProjectionStatus(name, row, out, PauseStore().read(conn, name))


def age_s(when: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - when).total_seconds())


def _version_row(conn: Connection, versions: VersionStore, name: str) -> VersionRow | None:
    try:
        return versions.read(conn, name)
    except ConfigurationError:
        return None  # never ran here
