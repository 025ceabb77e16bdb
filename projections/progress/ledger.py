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
from projections._sql import MAX_PARAMS, chunks

__all__ = ["EventLedger", "ledger_table"]

# two bound parameters per row: stay below SQLite's 32,766
_ROWS_PER_INSERT = MAX_PARAMS // 2


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
        ids = list(dict.fromkeys(e.event_id for e in events))
        if not ids:
            return []
        seen = self._record(conn, projection, ids)
        if not seen and len(ids) == len(events):
            return list(events)  # every id new and once in the batch: the usual case
        out: list[Event] = []
        done = seen  # ids recorded before, then each id as its first copy is kept
        for event in events:
            if event.event_id not in done:
                done.add(event.event_id)
                out.append(event)
        return out

    # Driver-level SQL, compiled by nobody: SQLAlchemy compiling a multi-row VALUES per
    # batch was most of this step's cost. PostgreSQL gets one statement with the ids as
    # one array; SQLite (whose executemany cannot return rows) multi-row VALUES.
    def _record(self, conn: Connection, projection: str, ids: list[str]) -> set[str]:
        """Insert the (distinct) ids; return those that were already recorded."""
        table = conn.dialect.identifier_preparer.format_table(self.table)
        if conn.dialect.name == "postgresql":
            # Sorted: concurrent writers lock the keys in one order. Only the duplicates
            # come back (a few per batch), not every new id.
            rows = conn.exec_driver_sql(
                f"WITH batch AS (SELECT unnest(%b::text[]) AS event_id), "
                f"added AS (INSERT INTO {table} (projection, event_id) "
                "SELECT %s, event_id FROM batch ORDER BY event_id "
                "ON CONFLICT DO NOTHING RETURNING event_id) "
                "SELECT event_id FROM batch EXCEPT ALL SELECT event_id FROM added",
                (ids, projection),
            )
            return {r[0] for r in rows}
        new: set[str] = set()
        per = _ROWS_PER_INSERT
        for part in chunks(sorted(ids), per):
            marks = ", ".join(["(?, ?)"] * len(part))
            params = tuple(x for eid in part for x in (projection, eid))
            rows = conn.exec_driver_sql(
                f"INSERT INTO {table} (projection, event_id) VALUES {marks} "
                "ON CONFLICT DO NOTHING RETURNING event_id",
                params,
            )
            new.update(r[0] for r in rows)
        return set(ids) - new

    def purge(self, conn: Connection, projection: str, older_than: datetime) -> int:
        t = self.table
        result = conn.execute(
            t.delete().where(and_(t.c.projection == projection, t.c.processed_at < older_than))
        )
        return int(result.rowcount or 0)
