"""Pause and resume: one row per paused projection, honoured by every running consumer.

``projectionist pause`` writes the row, ``resume`` deletes it. A running consumer's
generation control reads it between batches (about once a second): paused, the runner
pauses fetching on its assignment and keeps polling, so it keeps its group membership
and its partitions, and no checkpoint moves; resumed, it seeks back to checkpoint + 1
and catches up. The row is per projection (every generation's live consumers hold);
a rebuild's runner does not pause, it writes tables queries do not read yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, func, inspect, select

from projections._sql import insert_for
from schemas.utc import as_utc

__all__ = ["PAUSES", "Pause", "PauseStore"]

PAUSES = Table(
    "projection_pauses",
    MetaData(),
    Column("projection", String(100), primary_key=True),
    Column("paused_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("paused_by", String(200), nullable=False),
    Column("reason", String(500), nullable=False, default=""),
)


@dataclass(frozen=True, slots=True)
class Pause:
    projection: str
    since: datetime
    by: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "by": self.by, "reason": self.reason}


class PauseStore:
    """Writes, reads and removes the pause rows of projections."""

    def create(self, conn: Connection) -> None:
        PAUSES.create(conn, checkfirst=True)

    def pause(self, conn: Connection, projection: str, *, by: str, reason: str = "") -> Pause:
        """Pause ``projection``; pausing a paused one keeps the first row (its time and author)."""
        self.create(conn)
        insert = insert_for(conn, PAUSES).values(projection=projection, paused_by=by, reason=reason)
        conn.execute(insert.on_conflict_do_nothing())
        found = self.read(conn, projection)
        assert found is not None  # just written, in this transaction
        return found

    def resume(self, conn: Connection, projection: str) -> Pause | None:
        """Remove the pause row; the row that was there (None: it was not paused)."""
        found = self.read(conn, projection)
        if found is not None:
            conn.execute(PAUSES.delete().where(PAUSES.c.projection == projection))
        return found

    def read(self, conn: Connection, projection: str) -> Pause | None:
        if not inspect(conn).has_table(PAUSES.name):
            return None
        row = conn.execute(select(PAUSES).where(PAUSES.c.projection == projection)).first()
        if row is None:
            return None
        return Pause(row.projection, as_utc(row.paused_at), row.paused_by, row.reason)
