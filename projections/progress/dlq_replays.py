"""Dead letters replayed into a projection: ``dlq_replays``, so replay is exactly once.

The original ``(topic, partition, offset)`` of every dead letter replayed into the
projection, claimed in the replay's transaction; a second replay of the same message
is a no-op, and a claim whose event was rejected again is released.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    select,
    tuple_,
)

from projections._sql import chunks, insert_for

__all__ = ["ReplayLedger"]

_ROWS_PER_INSERT = 2_000


class ReplayLedger:
    """Original positions of dead letters already replayed: replay is exactly once."""

    def __init__(self, metadata: MetaData | None = None) -> None:
        self.metadata = metadata if metadata is not None else MetaData()
        self.table = Table(
            "dlq_replays",
            self.metadata,
            Column("projection", String(100), primary_key=True),
            Column("topic", String(249), primary_key=True),
            Column("partition", Integer, primary_key=True),
            Column("offset", BigInteger, primary_key=True),
            Column(
                "replayed_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
        )

    def create(self, conn: Connection) -> None:
        self.metadata.create_all(conn)

    def claim(
        self, conn: Connection, projection: str, positions: Sequence[tuple[str, int, int]]
    ) -> set[tuple[str, int, int]]:
        """Record ``positions``; return those not replayed before (the caller applies them)."""
        t = self.table
        new: set[tuple[str, int, int]] = set()
        for part in chunks(list(dict.fromkeys(positions)), _ROWS_PER_INSERT):
            stmt = (
                insert_for(conn, t)
                .values(
                    [
                        {"projection": projection, "topic": tp, "partition": p, "offset": o}
                        for tp, p, o in part
                    ]
                )
                .on_conflict_do_nothing()
                .returning(t.c.topic, t.c.partition, t.c.offset)
            )
            new.update((r.topic, r.partition, r.offset) for r in conn.execute(stmt))
        return new

    def replayed(
        self, conn: Connection, projection: str, positions: Sequence[tuple[str, int, int]]
    ) -> set[tuple[str, int, int]]:
        """Which of ``positions`` have been replayed (committed claims)."""
        t = self.table
        out: set[tuple[str, int, int]] = set()
        for part in chunks(list(positions), _ROWS_PER_INSERT):
            query = select(t.c.topic, t.c.partition, t.c.offset).where(
                and_(
                    t.c.projection == projection,
                    tuple_(t.c.topic, t.c.partition, t.c.offset).in_(list(part)),
                )
            )
            out.update((r.topic, r.partition, r.offset) for r in conn.execute(query))
        return out

    def release(
        self, conn: Connection, projection: str, positions: Sequence[tuple[str, int, int]]
    ) -> None:
        """Forget claims whose events were rejected again: a later replay may retry them."""
        t = self.table
        for topic, partition, offset in positions:
            conn.execute(
                t.delete().where(
                    and_(
                        t.c.projection == projection,
                        t.c.topic == topic,
                        t.c.partition == partition,
                        t.c.offset == offset,
                    )
                )
            )
