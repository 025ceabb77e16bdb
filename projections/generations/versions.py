"""Which generation of a projection queries read, and the atomic swap between generations.

Every projection writes physical tables ``<table>_v<generation>``. Queries read the
logical names (``posts``, ``tag_cloud``): views over the *active* generation's tables.
``projection_versions`` holds the pointer; :func:`swap` moves it and recreates the
views in one transaction (PostgreSQL and SQLite both have transactional DDL), so a
query sees either the old generation or the new one, never an empty or half-built
table. The previous generation stays for :func:`rollback` until :func:`drop_generation`.

The same row carries ``epoch``: ``replay`` bumps it after moving checkpoints, and
running consumers that watch it re-read their checkpoints and re-seek.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    inspect,
    select,
    text,
    update,
)

from projections._base import Projection
from projections._sql import insert_for
from projections.progress.checkpoints import TopicPartition
from schemas.errors import ConfigurationError

__all__ = [
    "ReplayMark",
    "VersionRow",
    "VersionStore",
    "active_generation",
    "as_utc",
    "logical_names",
]

_META = MetaData()
VERSIONS = Table(
    "projection_versions",
    _META,
    Column("projection", String(100), primary_key=True),
    Column("active_generation", Integer, nullable=False),
    Column("previous_generation", Integer),
    Column("rebuilding_generation", Integer),
    Column("highest_generation", Integer, nullable=False),
    Column("epoch", Integer, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
#: per partition, the last offset applied before a replay rewound it: events at or
#: below it are re-applications, so side effects must not fire for them. With
#: ``replay --to``, events from ``skip_from`` through ``replayed_through`` are passed
#: over (already applied, outside the window) instead of re-applied.
REPLAY_MARKS = Table(
    "projection_replay_marks",
    _META,
    Column("slot", String(100), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("replayed_through", BigInteger, nullable=False),
    Column("skip_from", BigInteger),
)
#: one row per running consumer process (live or rebuilding), refreshed while it runs
HEARTBEATS = Table(
    "projection_heartbeats",
    _META,
    Column("slot", String(100), primary_key=True),
    Column("instance", String(200), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True, slots=True)
class ReplayMark:
    """Offsets up to ``replayed_through`` were applied before the replay rewound them."""

    replayed_through: int
    skip_from: int | None = None

    def replays(self, offset: int) -> bool:
        return offset <= self.replayed_through

    def skips(self, offset: int) -> bool:
        return self.skip_from is not None and self.skip_from <= offset <= self.replayed_through


@dataclass(frozen=True, slots=True)
class VersionRow:
    projection: str
    active_generation: int
    previous_generation: int | None
    rebuilding_generation: int | None
    highest_generation: int
    epoch: int


def logical_names(projection: Projection) -> dict[str, str]:
    """Physical table name → the logical name queries use (``posts_v2`` → ``posts``)."""
    suffix = f"_v{projection.generation}"
    out = {}
    for table in projection.tables():
        if not table.name.endswith(suffix):
            raise ConfigurationError(f"table {table.name} does not carry the suffix {suffix}")
        out[table.name] = table.name.removesuffix(suffix)
    return out


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive UTC timestamps (CURRENT_TIMESTAMP); PostgreSQL aware ones."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def active_generation(conn: Connection, projection: str, default: int) -> int:
    """The generation queries read (``default``, the code's version, before any rebuild)."""
    if not inspect(conn).has_table(VERSIONS.name):
        return default
    found = conn.execute(
        select(VERSIONS.c.active_generation).where(VERSIONS.c.projection == projection)
    ).scalar_one_or_none()
    return default if found is None else int(found)


class VersionStore:
    """The active-generation pointer, views, replay marks and heartbeats of projections."""

    def create(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('projectionist.ddl'))"))
        _META.create_all(conn)

    def ensure(self, conn: Connection, projection: Projection) -> VersionRow:
        """Create the tables and this projection's row; give the active generation its views."""
        self.create(conn)
        insert = insert_for(conn, VERSIONS).values(
            projection=projection.name,
            active_generation=projection.generation,
            highest_generation=projection.generation,
            epoch=0,
        )
        conn.execute(insert.on_conflict_do_nothing())
        row = self.read(conn, projection.name)
        if row.active_generation == projection.generation:
            names = logical_names(projection)
            existing = set(inspect(conn).get_view_names())
            if not all(name in existing for name in names.values()):
                self._point_views(conn, names)
        return row

    def read(self, conn: Connection, projection: str, *, lock: bool = False) -> VersionRow:
        query = select(VERSIONS).where(VERSIONS.c.projection == projection)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise ConfigurationError(f"projection {projection!r} has never run here")
        return VersionRow(
            projection=row["projection"],
            active_generation=row["active_generation"],
            previous_generation=row["previous_generation"],
            rebuilding_generation=row["rebuilding_generation"],
            highest_generation=row["highest_generation"],
            epoch=row["epoch"],
        )

    def begin_rebuild(self, conn: Connection, projection: str, generation: int) -> None:
        conn.execute(
            update(VERSIONS)
            .where(VERSIONS.c.projection == projection)
            .values(
                rebuilding_generation=generation,
                highest_generation=func.max(VERSIONS.c.highest_generation, generation)
                if conn.dialect.name == "sqlite"
                else func.greatest(VERSIONS.c.highest_generation, generation),
                updated_at=func.now(),
            )
        )

    def end_rebuild(self, conn: Connection, projection: str) -> None:
        conn.execute(
            update(VERSIONS)
            .where(VERSIONS.c.projection == projection)
            .values(rebuilding_generation=None, updated_at=func.now())
        )

    def swap(self, conn: Connection, new: Projection) -> VersionRow:
        """Make ``new``'s generation the one queries read; the current one becomes previous.

        Call inside one transaction: pointer and views change together or not at all.
        """
        row = self.read(conn, new.name, lock=True)
        conn.execute(
            update(VERSIONS)
            .where(VERSIONS.c.projection == new.name)
            .values(
                active_generation=new.generation,
                previous_generation=row.active_generation,
                rebuilding_generation=None,
                updated_at=func.now(),
            )
        )
        self._point_views(conn, logical_names(new))
        return self.read(conn, new.name)

    def bump_epoch(self, conn: Connection, projection: str) -> int:
        """Tell running consumers of ``projection`` to reload checkpoints and re-seek."""
        conn.execute(
            update(VERSIONS)
            .where(VERSIONS.c.projection == projection)
            .values(epoch=VERSIONS.c.epoch + 1, updated_at=func.now())
        )
        return self.read(conn, projection).epoch

    def _point_views(self, conn: Connection, names: Mapping[str, str]) -> None:
        quote = conn.dialect.identifier_preparer.quote
        for physical, logical in sorted(names.items()):
            conn.execute(text(f"DROP VIEW IF EXISTS {quote(logical)}"))
            conn.execute(text(f"CREATE VIEW {quote(logical)} AS SELECT * FROM {quote(physical)}"))

    # -- replay marks ------------------------------------------------------------------
    def set_replay_marks(
        self, conn: Connection, slot: str, marks: Mapping[TopicPartition, ReplayMark]
    ) -> None:
        t = REPLAY_MARKS
        for (topic, partition), mark in sorted(marks.items()):
            where = and_(t.c.slot == slot, t.c.topic == topic, t.c.partition == partition)
            old = conn.execute(select(t.c.replayed_through).where(where)).scalar_one_or_none()
            conn.execute(t.delete().where(where))
            conn.execute(
                t.insert().values(
                    slot=slot,
                    topic=topic,
                    partition=partition,
                    # a second replay before the first one finished keeps the higher mark
                    replayed_through=max(mark.replayed_through, old if old is not None else -1),
                    skip_from=mark.skip_from,
                )
            )

    def replay_marks(self, conn: Connection, slot: str) -> dict[TopicPartition, ReplayMark]:
        t = REPLAY_MARKS
        rows = conn.execute(
            select(t.c.topic, t.c.partition, t.c.replayed_through, t.c.skip_from).where(
                t.c.slot == slot
            )
        )
        return {(r.topic, r.partition): ReplayMark(r.replayed_through, r.skip_from) for r in rows}

    # -- heartbeats --------------------------------------------------------------------
    def heartbeat(self, conn: Connection, slot: str, instance: str, state: str) -> None:
        t = HEARTBEATS
        insert = insert_for(conn, t).values(slot=slot, instance=instance, state=state)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[t.c.slot, t.c.instance],
                set_={"state": insert.excluded.state, "seen_at": func.now()},
            )
        )

    def instances(self, conn: Connection, slot: str, *, fresh_s: float) -> dict[str, str]:
        """Processes that beat for ``slot`` within ``fresh_s`` seconds: instance → state."""
        rows = conn.execute(
            select(HEARTBEATS.c.instance, HEARTBEATS.c.state, HEARTBEATS.c.seen_at).where(
                HEARTBEATS.c.slot == slot
            )
        )
        now = datetime.now(UTC)
        return {
            r.instance: r.state
            for r in rows
            if (now - as_utc(r.seen_at)).total_seconds() <= fresh_s
        }

    def forget(self, conn: Connection, slot: str, instance: str) -> None:
        conn.execute(
            HEARTBEATS.delete().where(
                and_(HEARTBEATS.c.slot == slot, HEARTBEATS.c.instance == instance)
            )
        )

    def drop_generation(self, conn: Connection, projection: Projection) -> None:
        """Drop a generation's tables, checkpoints, marks and heartbeats (never the active one)."""
        row = self.read(conn, projection.name, lock=True)
        if projection.generation == row.active_generation:
            raise ConfigurationError(
                f"{projection.slot} is the active generation; roll back or rebuild first"
            )
        for table in reversed(projection.tables()):
            table.drop(conn, checkfirst=True)
        slot = projection.slot
        conn.execute(text("DELETE FROM projection_checkpoints WHERE projection = :s"), {"s": slot})
        if inspect(conn).has_table("processed_events"):  # the event-id ledger, keyed by slot
            conn.execute(text("DELETE FROM processed_events WHERE projection = :s"), {"s": slot})
        conn.execute(REPLAY_MARKS.delete().where(REPLAY_MARKS.c.slot == slot))
        conn.execute(HEARTBEATS.delete().where(HEARTBEATS.c.slot == slot))
        if row.previous_generation == projection.generation:
            conn.execute(
                update(VERSIONS)
                .where(VERSIONS.c.projection == projection.name)
                .values(previous_generation=None, updated_at=func.now())
            )
