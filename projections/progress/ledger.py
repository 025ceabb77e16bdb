"""The processed-events ledger: event-id dedup for projections whose writes are not idempotent.

A producer or outbox relay may publish one event twice, at two offsets; the offset
checkpoint cannot see that. Counters, sums and e-mails therefore also record each
event id in ``processed_events``, in the same transaction as the read-model writes.
The insert is ``ON CONFLICT DO NOTHING … RETURNING``: ids that come back are new, the
rest are duplicates — correct even if two consumers race on one id. Rows older than
the retention window are purged so the table stays bounded; the window must exceed
the longest delay after which a duplicate can still arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, and_, func

from projections._event import Event
from projections._sql import chunks, insert_for

__all__ = ["EventLedger", "ledger_table"]

_ROWS_PER_INSERT = 5_000


def ledger_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("projection", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column(
            "processed_at",
            DateTime(timezone=True),
            nullable=False,
            server_default=func.now(),
            index=True,
        ),
    )


class EventLedger:
    """Records event ids per projection slot and filters out those seen before."""

    def __init__(self, metadata: MetaData | None = None) -> None:
        self.metadata = metadata if metadata is not None else MetaData()
        self.table = ledger_table(self.metadata)

    def create(self, conn: Connection) -> None:
        self.metadata.create_all(conn)

    def first_seen(self, conn: Connection, projection: str, events: Sequence[Event]) -> list[Event]:
        """The events whose id this projection has not processed before (first copy wins)."""
        by_id: dict[str, Event] = {}
        for event in events:
            by_id.setdefault(event.event_id, event)
        if not by_id:
            return []
        t = self.table
        new_ids: set[str] = set()
        for part in chunks(list(by_id), _ROWS_PER_INSERT):
            stmt = (
                insert_for(conn, t)
                .values([{"projection": projection, "event_id": eid} for eid in part])
                .on_conflict_do_nothing()
                .returning(t.c.event_id)
            )
            new_ids.update(conn.execute(stmt).scalars())
        keep = {id(by_id[eid]) for eid in new_ids}
        return [e for e in events if id(e) in keep]

    def purge(self, conn: Connection, projection: str, older_than: datetime) -> int:
        t = self.table
        result = conn.execute(
            t.delete().where(and_(t.c.projection == projection, t.c.processed_at < older_than))
        )
        return int(result.rowcount or 0)
