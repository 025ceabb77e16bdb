"""What the read-model database remembers about dead letters: parked keys and replays.

Both tables are written in the batch (or replay) transaction, so they survive restarts
and can never disagree with the checkpoint:

* ``parked_keys`` (``park-key`` mode): once an event of an aggregate is dead-lettered,
  its key is parked on that partition, and every later event of the key is
  dead-lettered too (reason ``parked``) until ``dlq replay`` re-applies them and
  unparks the key. A projection therefore never applies event N+1 of a post without N.
* ``dlq_replays``: the original ``(topic, partition, offset)`` of every dead letter
  replayed into the projection; a second replay of the same message is a no-op.
* ``applied_event_log`` (audit, off by default; the fault suite turns it on): one row
  per offset a committed batch passed, with its outcome and the consumer that wrote
  it, for the lost/duplicate/skip/nonmonotonic/inconsistent-offset checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
)

from projections._sql import chunks, insert_for
from projections.progress.checkpoints import TopicPartition

__all__ = ["AppliedLog", "AppliedRow", "ParkRow", "ParkedKeys", "ReplayLedger", "key_text"]

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


@dataclass(frozen=True, slots=True)
class AppliedRow:
    topic: str
    partition: int
    offset: int
    event_id: str
    outcome: str  # "apply" | "dup-id" | "dead" | "parked" | "replay"


class AppliedLog:
    """Audit log of every offset a committed batch passed (same transaction)."""

    def __init__(self, metadata: MetaData | None = None) -> None:
        self.metadata = metadata if metadata is not None else MetaData()
        self.table = Table(
            "applied_event_log",
            self.metadata,
            Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
            Column("projection", String(100), nullable=False),
            Column("topic", String(249), nullable=False),
            Column("partition", Integer, nullable=False),
            Column("offset", BigInteger, nullable=False),
            Column("event_id", String(64), nullable=False),
            Column("outcome", String(16), nullable=False),
            Column("consumer", String(100), nullable=False),
        )

    def create(self, conn: Connection) -> None:
        self.metadata.create_all(conn)

    def record(
        self, conn: Connection, projection: str, consumer: str, rows: Sequence[AppliedRow]
    ) -> None:
        # Offset order within the batch, so ``seq`` order is the order of application.
        ordered = sorted(rows, key=lambda r: (r.topic, r.partition, r.offset))
        for part in chunks(ordered, _ROWS_PER_INSERT):
            conn.execute(
                self.table.insert(),
                [
                    {
                        "projection": projection,
                        "topic": r.topic,
                        "partition": r.partition,
                        "offset": r.offset,
                        "event_id": r.event_id[:64],
                        "outcome": r.outcome,
                        "consumer": consumer,
                    }
                    for r in part
                ],
            )
