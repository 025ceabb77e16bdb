"""The transactional outbox: an event is a row written in the state change's transaction.

"Save, then send" loses the event when the process dies in between, and sends events
for writes that roll back. Here the command services only *write* the event (already
validated and Avro-encoded) into ``outbox`` on the connection of their transaction;
:class:`~producers.relay.OutboxRelay` publishes committed rows afterwards. A rollback
takes the row with it, so no event exists for a change that did not happen.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from producers.command_tables import CommandTables
from schemas import AvroSerde, validate

__all__ = ["CommandResult", "Outbox", "OutboxEvent"]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """What a command emitted: enough for read-your-writes on the query side."""

    event_id: str
    event_type: str
    aggregate_id: str
    aggregate_version: int


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command's outcome: the aggregate's new version and the event it emitted (if any).

    The query side is caught up with this write once its read model shows ``version``
    for the aggregate (or has applied ``event_id``): read-your-writes for a client.
    """

    aggregate_id: str
    version: int
    event_id: str | None = None
    event_type: str | None = None

    @classmethod
    def of(cls, event: OutboxEvent) -> CommandResult:
        return cls(event.aggregate_id, event.aggregate_version, event.event_id, event.event_type)


class Outbox:
    """Appends events to the outbox table on the caller's connection (its transaction)."""

    def __init__(self, *, tables: CommandTables, serde: AvroSerde) -> None:
        self.tables = tables
        self.serde = serde

    @staticmethod
    def new_event_id() -> str:
        return str(uuid.uuid4())

    def append(
        self,
        conn: Connection,
        *,
        topic: str,
        aggregate_type: str,
        aggregate_id: str,
        aggregate_version: int,
        event_type: str,
        record: Mapping[str, Any],
    ) -> OutboxEvent:
        """Validate and encode ``record`` now, so a bad event fails the command, not the relay."""
        validate(event_type, record)
        payload = self.serde.encode(event_type, record)
        event_id = str(record["event_id"])
        conn.execute(
            self.tables.outbox.insert().values(
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                aggregate_version=aggregate_version,
                event_id=event_id,
                event_type=event_type,
                topic=topic,
                payload=payload,
                occurred_at_ms=int(time.time() * 1000),
            )
        )
        return OutboxEvent(event_id, event_type, aggregate_id, aggregate_version)
