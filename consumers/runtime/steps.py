"""Optional parts of a batch's way into the database, each a small step with one interface.

The shape of celery's bootsteps: the batch processor holds a list of :class:`Step`
objects and calls every hook of every step at its point of the commit protocol
(:mod:`consumers.runtime.transaction`); a feature that is off is simply not in the list.
Each hook defaults to doing nothing:

========================  =============================================================
hook                      when
========================  =============================================================
``create(conn)``          at start-up, with the checkpoint table: the step's own tables
``prepared(batch)``       after decoding, before anything is sent or written
``settle(batch, …)``      once per commit, before the dead letters are sent
``admit(conn, …)``        in the transaction, before ``apply``: which events go on
``record(conn, …)``       in the transaction, after ``apply``
``isolated(batch)``       after poison isolation moved rejected events to dead letters
========================  =============================================================

The steps: :class:`ReplayMarksStep` (always; replay windows), :class:`LedgerStep`
(event-id dedup), :class:`ParkingStep` (``park-key`` mode), :class:`AuditLogStep`
(``applied_event_log``). Hooks run once per batch, never once per event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine

from consumers.kafka.dead_letters import DeadLetter
from consumers.runtime.batch import PreparedBatch, position_of
from consumers.runtime.poison import park_followers
from projections import Event, EventLedger, TopicPartition, database_errors
from projections.generations.replay_marks import ReplayMark
from projections.progress.audit_log import AppliedLog, AppliedRow
from projections.progress.parked_keys import ParkedKeys, ParkRow, key_text

__all__ = ["AuditLogStep", "LedgerStep", "ParkingStep", "ReplayMarksStep", "Step"]


class Step:
    """One optional part of the batch protocol; override the hooks it needs."""

    def create(self, conn: Connection) -> None:
        """Create the step's tables (start-up, serialized with the other DDL)."""

    def prepared(self, batch: PreparedBatch) -> PreparedBatch:
        """Right after decoding: return the batch to go on with."""
        return batch

    def settle(self, batch: PreparedBatch, engine: Engine, slot: str) -> PreparedBatch:
        """Once per commit, before dead letters are sent: return the batch to commit."""
        return batch

    def admit(self, conn: Connection, slot: str, events: Sequence[Event]) -> Sequence[Event]:
        """In the transaction, before ``apply``: the events to apply."""
        return events

    def record(
        self,
        conn: Connection,
        slot: str,
        session: str,
        batch: PreparedBatch,
        applied: Sequence[Event],
    ) -> None:
        """In the transaction, after ``apply``: ``applied`` are the events that were admitted."""

    def isolated(self, batch: PreparedBatch) -> PreparedBatch:
        """After poison isolation moved rejected events to dead letters."""
        return batch


class ReplayMarksStep(Step):
    """Up to each partition's replay mark events are re-applications; ``replay --to`` skips.

    A running consumer's generation control keeps ``marks`` current (new epoch).
    """

    def __init__(self) -> None:
        self.marks: Mapping[TopicPartition, ReplayMark] = {}

    def prepared(self, batch: PreparedBatch) -> PreparedBatch:
        marks = self.marks
        if not marks or not any(tp in marks for tp in batch.moves):
            return batch
        events: list[Event] = []
        skipped = 0
        for event in batch.events:
            mark = marks.get((event.topic, event.partition))
            if mark is None:
                events.append(event)
            elif mark.skips(event.offset):
                skipped += 1  # applied before, outside the replay window
            elif event.live and mark.replays(event.offset):
                events.append(event._replace(live=False))
            else:
                events.append(event)
        letters: list[DeadLetter] = []
        for letter in batch.dead_letters:
            topic, partition, offset = position_of(letter)
            mark = marks.get((topic, partition))
            if mark is not None and mark.skips(offset):
                skipped += 1
            else:
                letters.append(letter)
        return replace(
            batch,
            events=events,
            dead_letters=letters,
            skipped_offset=batch.skipped_offset + skipped,
        )


class LedgerStep(Step):
    """Event-id dedup through ``processed_events``, purged past the retention window."""

    def __init__(self, ledger: EventLedger, *, retention: timedelta) -> None:
        self.ledger = ledger
        self.retention = retention
        self._next_purge = 0.0

    def create(self, conn: Connection) -> None:
        self.ledger.create(conn)

    def admit(self, conn: Connection, slot: str, events: Sequence[Event]) -> Sequence[Event]:
        return self.ledger.first_seen(conn, slot, events)

    def record(
        self,
        conn: Connection,
        slot: str,
        session: str,
        batch: PreparedBatch,
        applied: Sequence[Event],
    ) -> None:
        now = time.time()
        if now >= self._next_purge:  # keep the ledger bounded, every few minutes
            self._next_purge = now + 300
            self.ledger.purge(conn, slot, datetime.now(UTC) - self.retention)


class ParkingStep(Step):
    """``park-key`` mode: later events of a dead-lettered key are dead-lettered too."""

    def __init__(self, parking: ParkedKeys, *, projection: str) -> None:
        self.parking = parking
        self.projection = projection

    def create(self, conn: Connection) -> None:
        self.parking.create(conn)

    def settle(self, batch: PreparedBatch, engine: Engine, slot: str) -> PreparedBatch:
        with database_errors(), engine.connect() as conn:
            parked = self.parking.load(conn, slot, list(batch.moves))
        return park_followers(batch, self.projection, parked)

    def record(
        self,
        conn: Connection,
        slot: str,
        session: str,
        batch: PreparedBatch,
        applied: Sequence[Event],
    ) -> None:
        self.parking.park(conn, slot, _keys_to_park(batch.dead_letters))

    def isolated(self, batch: PreparedBatch) -> PreparedBatch:
        return park_followers(batch, self.projection, {})


class AuditLogStep(Step):
    """One ``applied_event_log`` row per offset a committed batch passed."""

    def __init__(self, log: AppliedLog) -> None:
        self.log = log

    def create(self, conn: Connection) -> None:
        self.log.create(conn)

    def record(
        self,
        conn: Connection,
        slot: str,
        session: str,
        batch: PreparedBatch,
        applied: Sequence[Event],
    ) -> None:
        self.log.record(conn, slot, session, _audit_rows(batch, applied))


def _keys_to_park(letters: Sequence[DeadLetter]) -> list[ParkRow]:
    """The first poison dead letter of each key: its key is parked from that offset on."""
    first: dict[tuple[TopicPartition, str], tuple[int, str]] = {}
    for letter in letters:
        topic, partition, offset = position_of(letter)
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
        AppliedRow(
            e.topic, e.partition, e.offset, e.event_id, "apply" if id(e) in kept else "dup-id"
        )
        for e in batch.events
    ]
    for letter in batch.dead_letters:
        topic, partition, offset = position_of(letter)
        headers = dict(letter.message.headers() or [])
        event_id = (headers.get("event_id") or b"").decode(errors="replace")
        outcome = "parked" if letter.reason == "parked" else "dead"
        rows.append(AppliedRow(topic, partition, offset, event_id, outcome))
    return rows


def _outcome(kept: bool) -> str:
    return "apply" if kept else "dup-id"
