"""The commit protocol of one prepared batch, written as numbered steps (Quix's checkpoint).

:meth:`PendingCommit.run` takes a batch into the read-model database:

1. **settle** (once): optional steps adjust the batch first (``park-key`` mode moves
   the later events of parked keys to the dead letters);
2. **send** the dead letters not acknowledged yet — except those whose origin the
   ``dead_letter_log`` already holds (a rebuild or replay meets the same poison: it
   reaches the dead-letter topic once for the life of the projection) — and wait for
   the broker's ack: the checkpoint moves past them right after, so a dead letter is
   never lost. A letter the broker refuses for good is kept as a *refused* row instead;
3. **one transaction**: compare-and-set every partition's checkpoint (first: the row
   locks serialize two writers of a partition, so a zombie's transaction fails with
   :class:`FencedError` and rolls back whole), log the batch's dead letters (refused
   ones with their refusal), let the steps admit events (event-id ledger),
   ``projection.apply``, let the steps record (parked keys, audit log); commit;
4. if ``apply`` rejects an event as poison, the transaction rolls back, the bad events
   are found by bisection (:mod:`consumers.runtime.poison`) and dead-lettered, and the
   protocol goes back to step 2 without them: every good event is still applied once.

A :class:`PendingCommit` keeps what it has done (dead letters acknowledged, the batch
as settled and isolated) across retries: after a :class:`RetryableError` the runner
calls :meth:`~PendingCommit.run` again and it goes on from there. The batch itself
is never edited; the commit returns a :class:`CommitResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Engine

from consumers.kafka.dead_letters import DeadLetter, DeadLetterSink, Refused
from consumers.runtime.batch import Position, PreparedBatch, position_of
from consumers.runtime.poison import find_rejected
from consumers.runtime.stats import RunStats
from consumers.runtime.steps import Step
from projections import (
    ApplyResult,
    CheckpointStore,
    Event,
    Projection,
    TopicPartition,
    database_errors,
)
from projections.progress.dead_letter_log import DeadLetterLog, LoggedLetter
from schemas.errors import PoisonError

__all__ = ["BatchTransaction", "CommitResult", "PendingCommit"]


@dataclass(frozen=True, slots=True)
class CommitResult:
    """A committed batch: as it went in (after settling and isolation), and where it left
    each partition's checkpoint."""

    batch: PreparedBatch
    #: new last applied offset per partition of the batch
    positions: Mapping[TopicPartition, int]
    result: ApplyResult


class BatchTransaction:
    """Commits prepared batches of one projection (see the module doc for the steps)."""

    def __init__(
        self,
        *,
        engine: Engine,
        projection: Projection,
        checkpoints: CheckpointStore,
        dead_letters: DeadLetterSink | None,
        stats: RunStats,
        steps: Sequence[Step],
        letter_log: DeadLetterLog,
    ) -> None:
        self.engine = engine
        self.projection = projection
        self.checkpoints = checkpoints
        self.dead_letters = dead_letters
        self.stats = stats
        self.steps = list(steps)
        self.letter_log = letter_log

    def begin(self, batch: PreparedBatch, *, session: Callable[[], str]) -> PendingCommit:
        """``session`` names the consumer session at write time (the audit log's column)."""
        return PendingCommit(self, batch, session=session)

    # -- step 2 ------------------------------------------------------------------------------
    def not_logged(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """``letters`` but those dead-lettered before (by any generation of the projection)."""
        if not letters:
            return []
        with database_errors(), self.engine.connect() as conn:
            known = self.letter_log.known(
                conn, self.projection.name, [position_of(d) for d in letters]
            )
        self.stats.dead_letters_known += len(known)
        return [d for d in letters if position_of(d) not in known]

    def send(self, letters: Sequence[DeadLetter]) -> Sequence[Refused]:
        if not letters:
            return []
        if self.dead_letters is None:
            raise letters[0].error
        return self.dead_letters.send(letters)

    # -- step 3 ------------------------------------------------------------------------------
    def write(
        self, batch: PreparedBatch, *, session: str, refused: Mapping[Position, str]
    ) -> CommitResult:
        """One transaction; :class:`RetryableError`, :class:`FencedError` or
        :class:`PoisonError` (from ``apply``) roll it back whole. ``refused``: the
        broker's answer for each dead letter it will never take."""
        result = ApplyResult(applied=0)
        events: Sequence[Event] = batch.events
        if batch.moves:
            slot = self.projection.slot
            with database_errors(), self.engine.begin() as conn:
                self.checkpoints.advance(conn, slot, batch.moves)
                self.letter_log.record(
                    conn, self.projection.name, [_logged(d, refused) for d in batch.dead_letters]
                )
                for step in self.steps:
                    events = step.admit(conn, slot, events)
                result = self.projection.apply(conn, events)
                for step in self.steps:
                    step.record(conn, slot, session, batch, events)
        self._count(batch, events, result)
        self.stats.dead_letters_refused += sum(
            1 for d in batch.dead_letters if position_of(d) in refused
        )
        return CommitResult(batch, {tp: m.new for tp, m in batch.moves.items()}, result)

    def _count(self, batch: PreparedBatch, applied: Sequence[Event], result: ApplyResult) -> None:
        s = self.stats
        s.skipped_event_id += len(batch.events) - len(applied)
        s.consumed += batch.consumed
        s.skipped_offset += batch.skipped_offset
        s.dead_lettered += len(batch.dead_letters)
        s.parked += sum(1 for d in batch.dead_letters if d.reason == "parked")
        s.applied += result.applied
        s.stale += result.stale
        s.ignored += len(applied) - result.applied - result.stale
        s.batches += 1
        if result.applied:
            s.last_applied_at = time.time()

    # -- step 4 ------------------------------------------------------------------------------
    def isolate(self, batch: PreparedBatch) -> PreparedBatch:
        """``batch`` with the events ``apply`` rejects (found in a throw-away transaction)
        moved to its dead letters."""
        slot = self.projection.slot
        with database_errors(), self.engine.connect() as conn, conn.begin() as tx:
            events: Sequence[Event] = batch.events
            for step in self.steps:
                events = step.admit(conn, slot, events)
            rejected = find_rejected(conn, self.projection, events)
            tx.rollback()
        if not rejected:
            raise RuntimeError(  # apply is not deterministic: never loop on it
                f"{slot}: apply rejected the batch but no single event"
            )
        now_ms = int(time.time() * 1000)
        bad = {id(event) for event, _ in rejected}
        letters = [
            DeadLetter(
                batch.messages[(e.topic, e.partition, e.offset)], self.projection.name, exc, now_ms
            )
            for e, exc in rejected
        ]
        isolated = replace(
            batch,
            events=[e for e in batch.events if id(e) not in bad],
            dead_letters=[*batch.dead_letters, *letters],
        )
        for step in self.steps:
            isolated = step.isolated(isolated)
        return isolated


class PendingCommit:
    """One batch on its way into the database; what is done survives a retry."""

    def __init__(
        self, tx: BatchTransaction, batch: PreparedBatch, *, session: Callable[[], str]
    ) -> None:
        self._tx = tx
        self.batch = batch
        self._session = session
        self._settled = False
        #: dead letters acknowledged by the broker: a retry of the database part skips them
        self._sent: set[Position] = set()
        #: dead letters the broker refused for good, with its answer (kept in the database)
        self._refused: dict[Position, str] = {}

    def drop_partitions(self, revoked: set[TopicPartition]) -> None:
        """A rebalance took ``revoked`` away while this commit was being retried."""
        self.batch = self.batch.without_partitions(revoked)

    def run(self) -> CommitResult:
        """Steps 1–4; raises :class:`RetryableError` (call again) or :class:`FencedError`."""
        tx = self._tx
        if not self._settled:
            for step in tx.steps:
                self.batch = step.settle(self.batch, tx.engine, tx.projection.slot)
            self._settled = True
        while True:
            unsent = [d for d in self.batch.dead_letters if position_of(d) not in self._sent]
            for refusal in tx.send(tx.not_logged(unsent)):
                self._refused[position_of(refusal.letter)] = refusal.reason
            self._sent.update(position_of(d) for d in unsent)
            try:
                return tx.write(self.batch, session=self._session(), refused=self._refused)
            except PoisonError:
                self.batch = tx.isolate(self.batch)


def _logged(letter: DeadLetter, refused: Mapping[Position, str]) -> LoggedLetter:
    msg = letter.message
    # NUL cannot be stored in PostgreSQL text; hostile input may put one in a message
    message = str(letter.error).replace("\x00", "\\x00")
    return LoggedLetter(
        origin=position_of(letter),
        key=msg.key(),
        error_class=type(letter.error).__name__,
        error_message=message,
        reason=letter.reason,
        refused=refused.get(position_of(letter)),
        value=msg.value(),
    )
