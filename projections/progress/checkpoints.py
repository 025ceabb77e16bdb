"""Checkpoints: ``(projection, topic, partition) → last applied offset``, in the read-model DB.

The database is the source of truth for progress. ``advance`` runs in the same
transaction as the read-model writes and is a compare-and-set on the previous offset,
so a consumer that lost its partition in a rebalance (a zombie) cannot commit a stale
batch: its transaction fails with :class:`FencedError` and rolls back whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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
    update,
)

from projections._sql import insert_for
from schemas.errors import FencedError

__all__ = ["CheckpointStore", "Move", "TopicPartition", "checkpoints_table"]

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Move:
    """Advance one partition's checkpoint from ``expected`` (None: no row yet) to ``new``."""

    expected: int | None
    new: int


def checkpoints_table(metadata: MetaData) -> Table:
    return Table(
        "projection_checkpoints",
        metadata,
        Column("projection", String(100), primary_key=True),
        Column("topic", String(249), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("last_offset", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class CheckpointStore:
    """Reads and compare-and-sets checkpoint rows inside the caller's transaction."""

    def __init__(self, metadata: MetaData | None = None) -> None:
        self.metadata = metadata if metadata is not None else MetaData()
        self.table = checkpoints_table(self.metadata)

    def create(self, conn: Connection) -> None:
        self.metadata.create_all(conn)

    def load(
        self, conn: Connection, projection: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Last applied offset per partition (absent: nothing applied yet)."""
        t = self.table
        query = select(t.c.topic, t.c.partition, t.c.last_offset).where(
            t.c.projection == projection
        )
        wanted = list(partitions) if partitions is not None else None
        if wanted is not None:
            if not wanted:
                return {}
            query = query.where(tuple_(t.c.topic, t.c.partition).in_(wanted))
        return {(row.topic, row.partition): row.last_offset for row in conn.execute(query)}

    def advance(
        self, conn: Connection, projection: str, moves: Mapping[TopicPartition, Move]
    ) -> None:
        """Compare-and-set each partition's checkpoint; :class:`FencedError` if any race is lost.

        Called first in the batch transaction: the row locks it takes serialize two
        writers of one partition, and partitions are locked in sorted order so two
        consumers never deadlock on each other's rows.
        """
        t = self.table
        for (topic, partition), move in sorted(moves.items()):
            if move.expected is None:
                insert = insert_for(conn, t).values(
                    projection=projection, topic=topic, partition=partition, last_offset=move.new
                )
                # RETURNING, not rowcount: drivers may not report rowcount for INSERT.
                won = conn.execute(insert.on_conflict_do_nothing().returning(t.c.partition))
                lost = won.first() is None
            else:
                result = conn.execute(
                    update(t)
                    .where(
                        and_(
                            t.c.projection == projection,
                            t.c.topic == topic,
                            t.c.partition == partition,
                            t.c.last_offset == move.expected,
                        )
                    )
                    .values(last_offset=move.new, updated_at=func.now())
                )
                lost = result.rowcount != 1
            if lost:
                raise FencedError(
                    f"{projection}: checkpoint of {topic}[{partition}] is no longer "
                    f"{move.expected}; another consumer owns this partition now"
                )

    def reset(
        self, conn: Connection, projection: str, offsets: Mapping[TopicPartition, int | None]
    ) -> None:
        """Set checkpoints outright (replay, rebuild hand-over); None removes the row."""
        t = self.table
        for (topic, partition), offset in sorted(offsets.items()):
            where = and_(
                t.c.projection == projection, t.c.topic == topic, t.c.partition == partition
            )
            conn.execute(t.delete().where(where))
            if offset is not None:
                conn.execute(
                    t.insert().values(
                        projection=projection, topic=topic, partition=partition, last_offset=offset
                    )
                )
