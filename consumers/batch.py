"""One batch, start to finish: filter, decode, dead-letter, apply, checkpoint — in one transaction.

No Kafka client here: messages arrive through :class:`MessageLike`, so unit tests
drive this with plain objects and a real database.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from consumers._message import MessageLike
from consumers.deadletter import DeadLetter, DeadLetterSink
from consumers.stats import RunStats
from projections import (
    ApplyResult,
    CheckpointStore,
    Event,
    EventLedger,
    Move,
    Projection,
    TopicPartition,
    database_errors,
)
from projections.versions import ReplayMark
from schemas import AvroSerde
from schemas.errors import PoisonError

__all__ = ["BatchProcessor", "PreparedBatch"]


@dataclass(slots=True)
class PreparedBatch:
    """Messages of one poll, sorted into what to apply and what to dead-letter."""

    events: list[Event] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: highest offset seen per partition: the checkpoint moves there on commit
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    consumed: int = 0
    skipped_offset: int = 0
    dead_letters_sent: bool = False

    def drop_partitions(self, revoked: set[TopicPartition]) -> None:
        """Forget what belongs to partitions this consumer no longer owns."""
        self.events = [e for e in self.events if (e.topic, e.partition) not in revoked]
        self.dead_letters = [
            d
            for d in self.dead_letters
            if (d.message.topic(), d.message.partition()) not in revoked
        ]
        self.ends = {tp: o for tp, o in self.ends.items() if tp not in revoked}

    def __bool__(self) -> bool:
        return self.consumed > 0


class BatchProcessor:
    """Turns polled messages into one read-model transaction."""

    def __init__(
        self,
        *,
        engine: Engine,
        projection: Projection,
        serde: AvroSerde,
        checkpoints: CheckpointStore,
        dead_letters: DeadLetterSink | None,
        stats: RunStats,
        ledger: EventLedger | None = None,
        ledger_retention: timedelta = timedelta(days=7),
    ) -> None:
        self.engine = engine
        self.projection = projection
        self.serde = serde
        self.checkpoints = checkpoints
        self.dead_letters = dead_letters
        self.stats = stats
        # Only projections with non-idempotent writes pay for event-id dedup.
        self.ledger = (ledger or EventLedger()) if projection.needs_event_dedup else None
        self.ledger_retention = ledger_retention
        self._next_purge = 0.0
        #: False in a rebuild: every event is a re-application (``Event.live``)
        self.live = True
        #: per partition, what a replay rewound (``consumers.control`` keeps it current)
        self.replay_marks: dict[TopicPartition, ReplayMark] = {}

    def ensure_schema(self) -> None:
        """Create the checkpoint table and the projection's tables if missing."""
        with database_errors(), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas start together; CREATE TABLE IF NOT EXISTS still races in
                # PostgreSQL's catalog, so DDL is serialized with an advisory lock.
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('projectionist.ddl'))"))
            self.checkpoints.create(conn)
            if self.ledger is not None:
                self.ledger.create(conn)
            self.projection.metadata.create_all(conn)

    def close(self) -> None:
        if self.dead_letters is not None:
            self.dead_letters.close()

    def load_positions(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        with database_errors(), self.engine.begin() as conn:
            return self.checkpoints.load(conn, self.projection.slot, partitions)

    def prepare(
        self, messages: Sequence[MessageLike], positions: Mapping[TopicPartition, int | None]
    ) -> PreparedBatch:
        """Sort messages; ``positions`` is the last applied offset of each owned partition."""
        batch = PreparedBatch()
        for msg in messages:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                continue
            tp = (topic, partition)
            if tp not in positions:
                continue  # revoked while the message was in flight; its new owner has it
            batch.consumed += 1
            last = positions[tp]
            if last is not None and offset <= last:
                batch.skipped_offset += 1
                continue
            batch.ends[tp] = max(offset, batch.ends.get(tp, -1))
            mark = self.replay_marks.get(tp)
            if mark is not None and mark.skips(offset):
                batch.skipped_offset += 1  # applied before, outside the replay window
                continue
            try:
                decoded = self.serde.decode(msg.value())
            except PoisonError as exc:
                batch.dead_letters.append(
                    DeadLetter(msg, self.projection.name, exc, int(time.time() * 1000))
                )
                continue
            ts_type, ts = msg.timestamp()
            batch.events.append(
                Event(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    event_type=decoded.event_type,
                    event_id=str(decoded.record.get("event_id", "")),
                    record=decoded.record,
                    key=msg.key(),
                    timestamp_ms=ts if ts_type else None,
                    live=self.live and not (mark is not None and mark.replays(offset)),
                )
            )
        return batch

    def commit(
        self, batch: PreparedBatch, positions: Mapping[TopicPartition, int | None]
    ) -> dict[TopicPartition, int]:
        """Apply ``batch`` in one transaction; return the new last-applied offsets.

        Raises :class:`RetryableError` (nothing committed, call again with the same
        batch) or :class:`FencedError` (another consumer owns a partition now).
        """
        if batch.dead_letters and not batch.dead_letters_sent:
            if self.dead_letters is None:
                raise batch.dead_letters[0].error
            self.dead_letters.send(batch.dead_letters)
            batch.dead_letters_sent = True  # a retry of the DB part must not send them again
        moves = {tp: Move(positions.get(tp), end) for tp, end in batch.ends.items()}
        result = ApplyResult(applied=0)
        events = batch.events
        if moves:
            with database_errors(), self.engine.begin() as conn:
                slot = self.projection.slot
                self.checkpoints.advance(conn, slot, moves)
                if self.ledger is not None:
                    events = self.ledger.first_seen(conn, slot, events)
                    self._purge_ledger(conn)
                result = self.projection.apply(conn, events)
        s = self.stats
        s.skipped_event_id += len(batch.events) - len(events)
        s.consumed += batch.consumed
        s.skipped_offset += batch.skipped_offset
        s.dead_lettered += len(batch.dead_letters)
        s.applied += result.applied
        s.stale += result.stale
        s.ignored += len(events) - result.applied - result.stale
        s.batches += 1
        if result.applied:
            s.last_applied_at = time.time()
        return {tp: m.new for tp, m in moves.items()}

    def _purge_ledger(self, conn: Connection) -> None:
        """Keep the ledger bounded: drop ids past the retention window, every few minutes."""
        now = time.time()
        if self.ledger is None or now < self._next_purge:
            return
        self._next_purge = now + 300
        cutoff = datetime.now(UTC) - self.ledger_retention
        self.ledger.purge(conn, self.projection.slot, cutoff)
