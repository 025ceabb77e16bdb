"""The applied-event audit log: ``applied_event_log``, one row per offset a batch passed.

Off by default (``PROJECTIONIST_APPLIED_LOG``; the fault suite turns it on). Written in
the batch transaction, with each offset's outcome and the consumer session that wrote
it, for the lost/duplicate/skip/nonmonotonic/inconsistent-offset checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table

from projections._sql import chunks

__all__ = ["AppliedLog", "AppliedRow"]

_ROWS_PER_INSERT = 2_000


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
