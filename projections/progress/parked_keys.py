"""Parked keys (``park-key`` mode): ``parked_keys``, written in the batch transaction.

Once an event of an aggregate is dead-lettered, its key is parked on that partition,
and every later event of the key is dead-lettered too (reason ``parked``) until ``dlq
replay`` re-applies them and unparks the key. A projection therefore never applies
event N+1 of a post without N. Written in the batch (or replay) transaction, so the
table survives restarts and never disagrees with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
from projections.progress.checkpoints import TopicPartition

__all__ = ["ParkRow", "ParkedKeys", "key_text"]

_ROWS_PER_INSERT = 2_000

#: (partition, key as hex, first dead-lettered offset, error class)
ParkRow = tuple[TopicPartition, str, int, str]


def key_text(key: bytes | None) -> str | None:
    """Keys are stored as hex: any bytes fit, and equality is exact."""
    return None if key is None else key.hex()


class ParkedKeys:
    """``(projection, topic, partition, key) → first dead-lettered offset``."""

    def __init__(self, metadata: MetaData | None = None) -> None:
        self.metadata = metadata if metadata is not None else MetaData()
        self.table = Table(
            "parked_keys",
            self.metadata,
            Column("projection", String(100), primary_key=True),
            Column("topic", String(249), primary_key=True),
            Column("partition", Integer, primary_key=True),
            Column("key_hex", String(1024), primary_key=True),
            Column("first_offset", BigInteger, nullable=False),
            Column("error_class", String(100), nullable=False),
            Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        )

    def create(self, conn: Connection) -> None:
        self.metadata.create_all(conn)

    def load(
        self, conn: Connection, projection: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, set[str]]:
        wanted = list(partitions)
        if not wanted:
            return {}
        t = self.table
        query = select(t.c.topic, t.c.partition, t.c.key_hex).where(
            and_(t.c.projection == projection, tuple_(t.c.topic, t.c.partition).in_(wanted))
        )
        out: dict[TopicPartition, set[str]] = {}
        for row in conn.execute(query):
            out.setdefault((row.topic, row.partition), set()).add(row.key_hex)
        return out

    def park(self, conn: Connection, projection: str, rows: Sequence[ParkRow]) -> None:
        """Park ``(partition, key_hex, first_offset, error_class)`` rows; parked ones stay."""
        if not rows:
            return
        t = self.table
        for part in chunks(list(rows), _ROWS_PER_INSERT):
            values = [
                {
                    "projection": projection,
                    "topic": tp[0],
                    "partition": tp[1],
                    "key_hex": key,
                    "first_offset": offset,
                    "error_class": error,
                }
                for tp, key, offset, error in part
            ]
            conn.execute(insert_for(conn, t).values(values).on_conflict_do_nothing())

    def unpark(self, conn: Connection, projection: str, tp: TopicPartition, key_hex: str) -> int:
        t = self.table
        result = conn.execute(
            t.delete().where(
                and_(
                    t.c.projection == projection,
                    t.c.topic == tp[0],
                    t.c.partition == tp[1],
                    t.c.key_hex == key_hex,
                )
            )
        )
        return int(result.rowcount or 0)

    def all(self, conn: Connection, projection: str) -> list[tuple[TopicPartition, str, int]]:
        t = self.table
        query = select(t.c.topic, t.c.partition, t.c.key_hex, t.c.first_offset).where(
            t.c.projection == projection
        )
        return [((r.topic, r.partition), r.key_hex, r.first_offset) for r in conn.execute(query)]
