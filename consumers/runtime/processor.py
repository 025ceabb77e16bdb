"""The batch processor of one projection: prepare a poll, commit it (eventsourcing's Follower).

It owns what a batch needs on its way from messages to rows — the decoder
(:class:`BatchPreparer`), the commit protocol (:class:`BatchTransaction`), the
optional steps (:mod:`consumers.runtime.steps`) — and the database engine, which
:meth:`close` disposes. The runner drives it; unit tests drive it with plain messages::

    batch = processor.prepare(messages, positions)
    result = processor.commit(batch)          # or processor.begin(batch).run(), retried
    positions.update(result.positions)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from consumers.kafka.dead_letters import DeadLetterSink
from consumers.kafka.message import MessageLike
from consumers.runtime.batch import BatchPreparer, PreparedBatch
from consumers.runtime.stats import RunStats
from consumers.runtime.steps import AuditLogStep, LedgerStep, ParkingStep, ReplayMarksStep, Step
from consumers.runtime.transaction import BatchTransaction, CommitResult, PendingCommit
from projections import (
    CheckpointStore,
    EventLedger,
    Projection,
    TopicPartition,
    database_errors,
    ddl_lock,
)
from projections._db import ping_engine
from projections.generations.replay_marks import ReplayMark
from projections.progress.audit_log import AppliedLog
from projections.progress.dead_letter_log import DeadLetterLog
from projections.progress.parked_keys import ParkedKeys
from schemas import AvroSerde
from schemas.errors import ConfigurationError

__all__ = ["BatchProcessor"]


_INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL SQLSTATE


class BatchProcessor:
    """Turns polled messages into one read-model transaction per batch."""

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
        self.stats = stats
        self._checkpoints = checkpoints
        self._dead_letters = dead_letters
        if projection.reads is not None or not projection.logical_types:
            serde = serde.reading(projection.reads, logical_types=projection.logical_types)
        self._preparer = BatchPreparer(serde=serde, projection=projection.name)
        self._replay = ReplayMarksStep()
        steps: list[Step] = [self._replay]
        # Only projections with non-idempotent writes pay for event-id dedup (unless asked).
        if projection.needs_event_dedup or event_dedup:
            steps.append(LedgerStep(ledger or EventLedger(), retention=ledger_retention))
        if dead_letter_mode == "park-key":
            steps.append(ParkingStep(ParkedKeys(), projection=projection.name))
        if applied_log:
            steps.append(AuditLogStep(AppliedLog()))
        self.steps: Sequence[Step] = tuple(steps)
        self._letter_log = DeadLetterLog()
        self._tx = BatchTransaction(
            engine=engine,
            projection=projection,
            checkpoints=checkpoints,
            dead_letters=dead_letters,
            stats=stats,
            steps=self.steps,
            letter_log=self._letter_log,
        )
        self._epoch = 0
        #: tells consumer sessions apart in the audit log: process id and epoch
        self.consumer_label = f"{os.getpid()}.0"

    # -- what the runner and the control adjust ----------------------------------------------
    @property
    def live(self) -> bool:
        """False in a rebuild: every event is a re-application (``Event.live``)."""
        return self._preparer.live

    @live.setter
    def live(self, value: bool) -> None:
        self._preparer.live = value

    @property
    def replay_marks(self) -> Mapping[TopicPartition, ReplayMark]:
        """Per partition, what a replay rewound (``consumers.runtime.control`` keeps it current)."""
        return self._replay.marks

    @replay_marks.setter
    def replay_marks(self, marks: Mapping[TopicPartition, ReplayMark]) -> None:
        self._replay.marks = dict(marks)

    def new_epoch(self) -> None:
        """A new assignment or a fencing: the audit log tells consumer sessions apart."""
        self._epoch += 1
        self.consumer_label = f"{os.getpid()}.{self._epoch}"

    # -- the database ----------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create the checkpoint table, the steps' tables and the projection's tables.

        Each is created only if missing, so the DML-only role of a deployment passes once
        ``projectionist migrate`` (the owner role) has created them; before that, a one-line
        :class:`ConfigurationError` says so instead of the driver's privilege traceback."""
        try:
            with database_errors(), self.engine.begin() as conn:
                ddl_lock(conn)  # bounded: the runner's retry loop sees SIGTERM and --timeout
                self._checkpoints.create(conn)
                self._letter_log.create(conn)
                for step in self.steps:
                    step.create(conn)
                self.projection.create_tables(conn)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
                raise
            raise ConfigurationError(
                f"the tables of {self.projection.slot} are missing and this database role "
                "may not create them: run `projectionist migrate` with the owner role first"
            ) from None

    def load_positions(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        with database_errors(), self.engine.begin() as conn:
            return self._checkpoints.load(conn, self.projection.slot, partitions)

    def ping(self) -> None:
        """Raise when the database does not answer (readiness probes)."""
        ping_engine(self.engine)

    def close(self) -> None:
        """Flush the dead-letter producer and release the engine's connections."""
        if self._dead_letters is not None:
            self._dead_letters.close()
        self.engine.dispose()

    # -- one batch -----------------------------------------------------------------------------
    def prepare(
        self, messages: Sequence[MessageLike], positions: Mapping[TopicPartition, int | None]
    ) -> PreparedBatch:
        """Sort messages; ``positions`` is the last applied offset of each owned partition."""
        batch = self._preparer.prepare(messages, positions)
        for step in self.steps:
            batch = step.prepared(batch)
        return batch

    def begin(self, batch: PreparedBatch) -> PendingCommit:
        """Start committing ``batch``; ``run()`` it, again after a retryable failure."""
        return self._tx.begin(batch, session=lambda: self.consumer_label)

    def commit(self, batch: PreparedBatch) -> CommitResult:
        """Commit ``batch`` in one go (tests, tools); see :class:`PendingCommit`."""
        return self.begin(batch).run()
