"""One batch, start to finish: filter, decode, dead-letter, apply, checkpoint — in one transaction.

No Kafka client here: messages arrive through :class:`MessageLike`, so unit tests
drive this with plain objects and a real database.

Order of a commit: park followers of dead-lettered keys (``park-key`` mode), send the
dead letters and wait for the broker's acknowledgement, then one transaction that
compare-and-sets the checkpoints, filters known event ids, parks new keys, applies
and (audit mode) logs every offset it passed. If ``apply`` rejects an event the
transaction rolls back, the bad events are found by bisection and dead-lettered, and
the commit starts again without them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from consumers.kafka.dead_letters import DeadLetter, DeadLetterSink
from consumers.kafka.message import MessageLike
from consumers.runtime.poison import find_rejected, park_followers
from consumers.runtime.stats import RunStats
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
from projections.generations.replay_marks import ReplayMark
from projections.progress.audit_log import AppliedLog, AppliedRow
from projections.progress.parked_keys import ParkedKeys, key_text
from schemas import AvroSerde
from schemas.errors import PoisonError

__all__ = ["BatchProcessor", "PreparedBatch"]

Position = tuple[str, int, int]


@dataclass(slots=True)
class PreparedBatch:
    """Messages of one poll, sorted into what to apply and what to dead-letter."""

    events: list[Event] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: the message behind each event, for dead-lettering it with its original bytes
    messages: dict[Position, MessageLike] = field(default_factory=dict)
    #: highest offset seen per partition: the checkpoint moves there on commit
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    consumed: int = 0
    skipped_offset: int = 0
    #: dead letters acknowledged by the broker: a retry of the DB part skips them
    sent: set[Position] = field(default_factory=set)
    parking_checked: bool = False

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
        event_dedup: bool = False,
        dead_letter_mode: str = "skip",
        applied_log: bool = False,
    ) -> None:
        self.engine = engine
        self.projection = projection
        self.serde = serde
        self.checkpoints = checkpoints
        self.dead_letters = dead_letters
        self.stats = stats
        # Only projections with non-idempotent writes pay for event-id dedup (unless asked).
        wants_ledger = projection.needs_event_dedup or event_dedup
        self.ledger = (ledger or EventLedger()) if wants_ledger else None
        self.ledger_retention = ledger_retention
        self._next_purge = 0.0
        #: False in a rebuild: every event is a re-application (``Event.live``)
        self.live = True
        #: per partition, what a replay rewound (``consumers.runtime.control`` keeps it current)
        self.replay_marks: dict[TopicPartition, ReplayMark] = {}
        self.parking = ParkedKeys() if dead_letter_mode == "park-key" else None
        self.applied_log = AppliedLog() if applied_log else None
        self._epoch = 0
        self.consumer_label = f"{os.getpid()}.0"

    def new_epoch(self) -> None:
        """A new assignment or a fencing: the audit log tells consumer sessions apart."""
        self._epoch += 1
        self.consumer_label = f"{os.getpid()}.{self._epoch}"

    def ensure_schema(self) -> None:
        """Create the checkpoint table and the projection's tables if missing."""
        with database_errors(), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas start together; CREATE TABLE IF NOT EXISTS still races in
                # PostgreSQL's catalog, so DDL is serialized with an advisory lock.
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('projectionist.ddl'))"))
            self.checkpoints.create(conn)
            for extra in (self.ledger, self.parking, self.applied_log):
                if extra is not None:
                    extra.create(conn)
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
            batch.messages[(topic, partition, offset)] = msg
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
        if self.parking is not None and not batch.parking_checked:
            with database_errors(), self.engine.connect() as conn:
                parked = self.parking.load(conn, self.projection.slot, list(batch.ends))
            park_followers(batch, self.projection.name, parked)
            batch.parking_checked = True
        while True:
            self._send_dead_letters(batch)
            try:
                return self._transaction(batch, positions)
            except PoisonError:
                self._isolate_rejected(batch)

    def _send_dead_letters(self, batch: PreparedBatch) -> None:
        unsent = [d for d in batch.dead_letters if _position(d) not in batch.sent]
        if not unsent:
            return
        if self.dead_letters is None:
            raise unsent[0].error
        self.dead_letters.send(unsent)
        batch.sent.update(_position(d) for d in unsent)

    def _isolate_rejected(self, batch: PreparedBatch) -> None:
        """Name the events ``apply`` rejects (throw-away transaction) and dead-letter them."""
        with database_errors(), self.engine.connect() as conn, conn.begin() as tx:
            events = batch.events
            if self.ledger is not None:
                events = self.ledger.first_seen(conn, self.projection.slot, events)
            rejected = find_rejected(conn, self.projection, events)
            tx.rollback()
        if not rejected:
            raise RuntimeError(  # apply is not deterministic: never loop on it
                f"{self.projection.slot}: apply rejected the batch but no single event"
            )
        now_ms = int(time.time() * 1000)
        bad = {id(event) for event, _ in rejected}
        batch.events = [e for e in batch.events if id(e) not in bad]
        for event, exc in rejected:
            msg = batch.messages[(event.topic, event.partition, event.offset)]
            batch.dead_letters.append(DeadLetter(msg, self.projection.name, exc, now_ms))
        if self.parking is not None:
            park_followers(batch, self.projection.name, {})

    def _transaction(
        self, batch: PreparedBatch, positions: Mapping[TopicPartition, int | None]
    ) -> dict[TopicPartition, int]:
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
                if self.parking is not None:
                    self.parking.park(conn, slot, _keys_to_park(batch.dead_letters))
                result = self.projection.apply(conn, events)
                if self.applied_log is not None:
                    rows = _audit_rows(batch, events)
                    self.applied_log.record(conn, slot, self.consumer_label, rows)
        s = self.stats
        s.skipped_event_id += len(batch.events) - len(events)
        s.consumed += batch.consumed
        s.skipped_offset += batch.skipped_offset
        s.dead_lettered += len(batch.dead_letters)
        s.parked += sum(1 for d in batch.dead_letters if d.reason == "parked")
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


def _position(letter: DeadLetter) -> Position:
    msg = letter.message
    return (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)


def _keys_to_park(letters: Sequence[DeadLetter]) -> list[tuple[TopicPartition, str, int, str]]:
    """The first poison dead letter of each key: its key is parked from that offset on."""
    first: dict[tuple[TopicPartition, str], tuple[int, str]] = {}
    for letter in letters:
        topic, partition, offset = _position(letter)
        key = key_text(letter.message.key())
        if key is None or letter.reason != "poison":
            continue
        slot = ((topic, partition), key)
        if slot not in first or offset < first[slot][0]:
            first[slot] = (offset, type(letter.error).__name__)
    return [(tp, key, offset, error) for (tp, key), (offset, error) in first.items()]


def _audit_rows(batch: PreparedBatch, applied: Sequence[Event]) -> list[AppliedRow]:
    kept = {id(e) for e in applied}
    rows = [
        AppliedRow(e.topic, e.partition, e.offset, e.event_id, _outcome(id(e) in kept))
        for e in batch.events
    ]
    for letter in batch.dead_letters:
        topic, partition, offset = _position(letter)
        headers = dict(letter.message.headers() or [])
        event_id = (headers.get("event_id") or b"").decode(errors="replace")
        outcome = "parked" if letter.reason == "parked" else "dead"
        rows.append(AppliedRow(topic, partition, offset, event_id, outcome))
    return rows


def _outcome(kept: bool) -> str:
    return "apply" if kept else "dup-id"
