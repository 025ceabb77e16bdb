"""Heartbeats: one row per running consumer process (live, paused or rebuilding) of a slot.

Refreshed while the process runs and removed when it stops cleanly; ``status`` reads
them to tell live, paused, rebuilding and stopped generations apart, and ``rebuild`` /
``cleanup`` refuse to drop a generation a process still writes. With each beat the
process also records the partitions it owns (``projection_owners``), so ``status``
can say which process owns which partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    select,
)

from projections._sql import insert_for
from schemas.utc import as_utc

__all__ = ["HEARTBEATS", "OWNERS", "HeartbeatStore"]

#: one row per running consumer process (live or rebuilding), refreshed while it runs
HEARTBEATS = Table(
    "projection_heartbeats",
    MetaData(),
    Column("slot", String(100), primary_key=True),
    Column("instance", String(200), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: which process owns which partition of a slot, as of that process's last beat
OWNERS = Table(
    "projection_owners",
    MetaData(),
    Column("slot", String(100), primary_key=True),
    Column("instance", String(200), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


class HeartbeatStore:
    """Beats, lists and forgets the running processes of projection slots."""

    def beat(self, conn: Connection, slot: str, instance: str, state: str) -> None:
        t = HEARTBEATS
        insert = insert_for(conn, t).values(slot=slot, instance=instance, state=state)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[t.c.slot, t.c.instance],
                set_={"state": insert.excluded.state, "seen_at": func.now()},
            )
        )

    def own(
        self, conn: Connection, slot: str, instance: str, partitions: Iterable[tuple[str, int]]
    ) -> None:
        """Record the partitions ``instance`` owns now (replacing what it owned before)."""
        self._disown(conn, slot, instance)
        rows = [
            {"slot": slot, "instance": instance, "topic": t, "partition": p}
            for t, p in sorted(partitions)
        ]
        if rows:
            conn.execute(OWNERS.insert(), rows)

    def owners(self, conn: Connection, slot: str, *, fresh_s: float) -> dict[tuple[str, int], str]:
        """Owner process per partition of ``slot``, from beats within ``fresh_s`` seconds."""
        t = OWNERS
        rows = conn.execute(
            select(t.c.topic, t.c.partition, t.c.instance, t.c.seen_at)
            .where(t.c.slot == slot)
            .order_by(t.c.seen_at)  # a partition that moved: the newest owner wins
        )
        now = datetime.now(UTC)
        return {
            (r.topic, r.partition): r.instance
            for r in rows
            if (now - as_utc(r.seen_at)).total_seconds() <= fresh_s
        }

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
        self._disown(conn, slot, instance)

    def _disown(self, conn: Connection, slot: str, instance: str) -> None:
        conn.execute(
            OWNERS.delete().where(and_(OWNERS.c.slot == slot, OWNERS.c.instance == instance))
        )
