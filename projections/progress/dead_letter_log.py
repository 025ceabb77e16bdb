"""Every dead letter of a projection, once per origin: ``dead_letter_log``.

A row per ``(projection, topic, partition, offset)`` that was dead-lettered, written in
the batch transaction that moves the checkpoint past it. Keyed by the projection's
*name*, not its generation: a rebuild or a replay meets the same poison again, finds
its origin here and does not send it a second time, so a poison message reaches the
dead-letter topic once for the life of the projection (a crash between the broker's
acknowledgement and the commit may still send a copy, which tools count once).

A letter the broker refuses for good (too large for the dead-letter topic, …) is not
lost and does not block its partition: its row carries the refusal, the size, a
SHA-256 and the first bytes of the value; ``dlq list`` shows these *refused* letters
and ``status`` counts them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    inspect,
    select,
    tuple_,
)

from projections._sql import chunks, insert_for

__all__ = ["HEAD_BYTES", "DeadLetterLog", "LoggedLetter", "Origin"]

#: first bytes of a refused letter's value kept in the database
HEAD_BYTES = 1024
_ROWS_PER_STATEMENT = 1_000

#: where a message was first published: (topic, partition, offset)
Origin = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class LoggedLetter:
    """One dead letter as the database knows it."""

    origin: Origin
    key: bytes | None
    error_class: str
    error_message: str
    reason: str
    recorded_at: datetime | None = None
    #: None: the dead-letter topic has it; else the broker's permanent refusal
    refused: str | None = None
    value: bytes | None = None  # in: the whole value (only its size, hash, head are stored)
    value_size: int | None = None
    value_sha256: str | None = None
    value_head: bytes | None = None


class DeadLetterLog:
    """``(projection, topic, partition, offset) → the dead letter``; see the module doc."""

    def __init__(self, metadata: MetaData | None = None) -> None:
        self.metadata = metadata if metadata is not None else MetaData()
        self.table = Table(
            "dead_letter_log",
            self.metadata,
            Column("projection", String(100), primary_key=True),
            Column("topic", String(249), primary_key=True),
            Column("partition", Integer, primary_key=True),
            Column("offset", BigInteger, primary_key=True),
            Column("key", LargeBinary),
            Column("error_class", String(100), nullable=False),
            Column("error_message", Text, nullable=False),
            Column("reason", String(20), nullable=False),
            Column("refused", Text),
            Column("value_size", BigInteger),
            Column("value_sha256", String(64)),
            Column("value_head", LargeBinary),
            Column(
                "recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
        )

    def create(self, conn: Connection) -> None:
        self.metadata.create_all(conn)

    def known(self, conn: Connection, projection: str, origins: Iterable[Origin]) -> set[Origin]:
        """Which of ``origins`` were dead-lettered before (by any generation)."""
        t = self.table
        out: set[Origin] = set()
        for part in chunks(sorted(set(origins)), _ROWS_PER_STATEMENT):
            query = select(t.c.topic, t.c.partition, t.c.offset).where(
                and_(
                    t.c.projection == projection,
                    tuple_(t.c.topic, t.c.partition, t.c.offset).in_(part),
                )
            )
            out.update((r.topic, r.partition, r.offset) for r in conn.execute(query))
        return out

    def record(self, conn: Connection, projection: str, letters: Sequence[LoggedLetter]) -> None:
        """Log ``letters``; an origin logged before keeps its first row."""
        if not letters:
            return
        t = self.table
        for part in chunks(list(letters), _ROWS_PER_STATEMENT):
            values = [_row(projection, letter) for letter in part]
            conn.execute(insert_for(conn, t).values(values).on_conflict_do_nothing())

    def letters(
        self, conn: Connection, projection: str, *, key: bytes | None = None
    ) -> list[LoggedLetter]:
        """The projection's dead letters in origin order (only ``key``'s when given)."""
        t = self.table
        query = select(t).where(t.c.projection == projection)
        if key is not None:
            query = query.where(t.c.key == key)
        query = query.order_by(t.c.topic, t.c.partition, t.c.offset)
        return [
            LoggedLetter(
                origin=(r.topic, r.partition, r.offset),
                key=r.key,
                error_class=r.error_class,
                error_message=r.error_message,
                reason=r.reason,
                recorded_at=r.recorded_at,
                refused=r.refused,
                value_size=r.value_size,
                value_sha256=r.value_sha256,
                value_head=r.value_head,
            )
            for r in conn.execute(query)
        ]

    def per_partition(
        self, conn: Connection, projection: str
    ) -> dict[tuple[str, int], tuple[int, int]]:
        """(distinct, refused) dead letters per origin partition; {} before the table exists."""
        if not inspect(conn).has_table(self.table.name):
            return {}
        t = self.table
        query = (
            select(t.c.topic, t.c.partition, func.count(), func.count(t.c.refused))
            .where(t.c.projection == projection)
            .group_by(t.c.topic, t.c.partition)
        )
        return {(r[0], r[1]): (int(r[2]), int(r[3])) for r in conn.execute(query)}

    def counts(self, conn: Connection, projection: str) -> tuple[int, int]:
        """(distinct dead letters, of which refused by the broker)."""
        t = self.table
        row = conn.execute(
            select(func.count(), func.count(t.c.refused)).where(t.c.projection == projection)
        ).one()
        return int(row[0]), int(row[1])


def _row(projection: str, letter: LoggedLetter) -> dict[str, object]:
    topic, partition, offset = letter.origin
    row: dict[str, object] = {
        "projection": projection,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": letter.key,
        "error_class": letter.error_class[:100],
        "error_message": letter.error_message[:1000],
        "reason": letter.reason,
        "refused": letter.refused,
        # every row has every column: a multi-row INSERT takes its columns from the first
        "value_size": None,
        "value_sha256": None,
        "value_head": None,
    }
    if letter.refused is not None and letter.value is not None:
        row["value_size"] = len(letter.value)
        row["value_sha256"] = hashlib.sha256(letter.value).hexdigest()
        row["value_head"] = letter.value[:HEAD_BYTES]
    return row
