"""Replay marks: how far each partition had got before ``replay`` rewound it.

Events at or below a partition's mark are re-applications (``Event.live`` is False,
so side effects stay silent); with ``replay --to`` the already-applied events from
``skip_from`` through the mark are passed over instead. Written by ``replay`` in the
transaction that moves the checkpoints back; read by running consumers on each epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    select,
)

from projections.progress.checkpoints import TopicPartition

__all__ = ["REPLAY_MARKS", "ReplayMark", "ReplayMarkStore"]

#: per partition, the last offset applied before a replay rewound it: events at or
#: below it are re-applications, so side effects must not fire for them. With
#: ``replay --to``, events from ``skip_from`` through ``replayed_through`` are passed
#: over (already applied, outside the window) instead of re-applied.
REPLAY_MARKS = Table(
    "projection_replay_marks",
    MetaData(),
    Column("slot", String(100), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("replayed_through", BigInteger, nullable=False),
    Column("skip_from", BigInteger),
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


class ReplayMarkStore:
    """The replay marks of one projection slot, per partition."""

    def set(self, conn: Connection, slot: str, marks: Mapping[TopicPartition, ReplayMark]) -> None:
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

    def load(self, conn: Connection, slot: str) -> dict[TopicPartition, ReplayMark]:
        t = REPLAY_MARKS
        rows = conn.execute(
            select(t.c.topic, t.c.partition, t.c.replayed_through, t.c.skip_from).where(
                t.c.slot == slot
            )
        )
        return {(r.topic, r.partition): ReplayMark(r.replayed_through, r.skip_from) for r in rows}
