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

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    func,
    inspect,
    select,
    text,
    update,
)

from projections._base import Projection
from projections._db import ddl_lock
from projections._sql import insert_for
from projections.generations.heartbeats import HEARTBEATS, OWNERS
from projections.generations.pauses import PAUSES
from projections.generations.replay_marks import REPLAY_MARKS
from schemas.errors import ConfigurationError

__all__ = [
    "VersionRow",
    "VersionStore",
    "active_generation",
    "active_generations",
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


def active_generation(conn: Connection, projection: str, default: int) -> int:
    """The generation queries read (``default``, the code's version, before any rebuild)."""
    if not inspect(conn).has_table(VERSIONS.name):
        return default
    found = conn.execute(
        select(VERSIONS.c.active_generation).where(VERSIONS.c.projection == projection)
    ).scalar_one_or_none()
    return default if found is None else int(found)


def active_generations(
    conn: Connection, defaults: Mapping[str, int], *, table_exists: bool = False
) -> dict[str, int]:
    """The active generation of each of ``defaults``' projections, in one query.

    For readers that resolve it per request or per run (the query API, reconcile, the
    dead-letter tools): a projection never rebuilt reads its ``default`` generation.
    ``table_exists`` skips the catalog lookup for a caller that saw the table already
    (it is never dropped).
    """
    if not table_exists and not inspect(conn).has_table(VERSIONS.name):
        return dict(defaults)
    rows = conn.execute(
        select(VERSIONS.c.projection, VERSIONS.c.active_generation).where(
            VERSIONS.c.projection.in_(list(defaults))
        )
    )
    found = {name: int(generation) for name, generation in rows}
    return {name: found.get(name, default) for name, default in defaults.items()}


class VersionStore:
    """The active-generation pointer, the views and the epoch of projections."""

    def create(self, conn: Connection) -> None:
        """The pointer, replay-mark, heartbeat, owner and pause tables (one DDL lock)."""
        ddl_lock(conn)
        for table in (VERSIONS, REPLAY_MARKS, HEARTBEATS, OWNERS, PAUSES):
            table.create(conn, checkfirst=True)

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

    def refresh_views(self, conn: Connection, projection: Projection) -> None:
        """Point the views again when ``projection`` is the active generation (after a
        column was added in place: PostgreSQL fixed the view's columns when creating it)."""
        if not inspect(conn).has_table(VERSIONS.name):
            return
        found = conn.execute(
            select(VERSIONS.c.active_generation).where(VERSIONS.c.projection == projection.name)
        ).scalar_one_or_none()
        if found == projection.generation:
            self._point_views(conn, logical_names(projection))

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
        conn.execute(OWNERS.delete().where(OWNERS.c.slot == slot))
        if row.previous_generation == projection.generation:
            conn.execute(
                update(VERSIONS)
                .where(VERSIONS.c.projection == projection.name)
                .values(previous_generation=None, updated_at=func.now())
            )
