"""The outbox relay: publish committed outbox rows, in order per aggregate, then mark them.

One round (:meth:`OutboxRelay.relay_once`) is one database transaction:

1. **claim** up to ``batch_size`` unpublished rows, oldest first, with
   ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas take disjoint rows
   without waiting on each other (SQLite has one writer: ``BEGIN IMMEDIATE`` is the claim);
2. keep, per aggregate, only rows that *start* its unpublished history: a row whose
   aggregate has an older unpublished row held by another replica waits for the next
   round, so no replica overtakes another on one aggregate;
3. publish with the idempotent producer (key = aggregate id → one partition, in order)
   and wait for every acknowledgement;
4. mark the rows published and commit.

A crash between 3 and 4 publishes those rows again on the next round: at-least-once,
with the event id in each message's headers and body so consumers drop the duplicate
(version guard or event-id ledger). A broker or database outage rolls the round back
and retries with exponential backoff and jitter; nothing is marked that was not acked.
Driver errors reach the relay only through ``database_errors``, the edge that turns
them into :class:`DatabaseUnavailable` (``projections.database_errors``, passed in by
the composition root: ``producers`` does not import ``projections``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    RowMapping,
    String,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from producers.command_tables import CommandTables
from producers.publisher import EventPublisher
from schemas.backoff import Backoff
from schemas.errors import BrokerUnavailable, RetryableError

__all__ = [
    "Backlog",
    "DatabaseErrors",
    "OutboxRelay",
    "RelayObserver",
    "RelaySettings",
    "RelayStats",
    "Stopper",
    "outbox_backlog",
    "pending_count",
]

log = structlog.get_logger(__name__)
_MARK_CHUNK = 5_000


#: a context manager factory that re-raises retryable driver errors as DatabaseUnavailable
DatabaseErrors = Callable[[], AbstractContextManager[object]]


class Stopper(Protocol):
    """``threading.Event`` or the CLI's stop signal: set it to end the loop."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float) -> bool: ...


class RelayObserver(Protocol):
    """Told what each round did (metrics, probes); never asked anything back."""

    def published(self, counts: dict[tuple[str, str], int]) -> None:
        """A round committed: events published per (service, topic); ``{}`` when idle."""

    def failed(self, error: str) -> None:
        """A round failed with a retryable error and is retried after a backoff."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """Unpublished outbox rows of one service (aggregate type)."""

    service: str
    pending: int
    oldest_age_s: float


@dataclass(frozen=True, slots=True)
class RelaySettings:
    batch_size: int = 500
    poll_interval_s: float = 0.2  # idle wait between empty rounds (run_forever)
    retry_initial_s: float = 0.2
    retry_max_s: float = 15.0
    flush_timeout_s: float = 30.0  # longest wait for acks while the claim is held


@dataclass(slots=True)
class RelayStats:
    published: int = 0
    rounds: int = 0
    retries: int = 0
    deferred: int = 0  # claimed rows left for a later round (older row held elsewhere)
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.published / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "rate_per_s": round(self.rate, 1)}


class OutboxRelay:
    """Moves outbox rows to Kafka; run it in-process or as ``projectionist relay``."""

    def __init__(
        self,
        engine: Engine,
        *,
        publisher: EventPublisher,
        database_errors: DatabaseErrors,
        tables: CommandTables | None = None,
        settings: RelaySettings = RelaySettings(),
        framing: Callable[[bytes], bytes] | None = None,
        stop: Stopper | None = None,
        observer: RelayObserver | None = None,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.database_errors = database_errors
        self.tables = tables or CommandTables()
        self.settings = settings
        self.framing = framing  # e.g. re-frame for a Schema Registry
        self.stop = stop
        self.observer = observer
        self.stats = RelayStats()
        self._counts: dict[tuple[str, str], int] = {}

    # -- loops ---------------------------------------------------------------------
    def drain(self, *, timeout_s: float | None = None) -> RelayStats:
        """Publish until a round finds nothing to claim; return the counters."""
        return self._loop(forever=False, timeout_s=timeout_s)

    def run_forever(self) -> RelayStats:
        """Publish as rows arrive until ``stop`` is set (the service mode)."""
        return self._loop(forever=True, timeout_s=None)

    def _loop(self, *, forever: bool, timeout_s: float | None) -> RelayStats:
        started = time.monotonic()
        deadline = None if timeout_s is None else started + timeout_s
        # jitter: replicas that failed together must not retry in step
        backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
        failures = 0
        try:
            while not self._stopping():
                if deadline is not None and time.monotonic() > deadline:
                    break
                try:
                    with self.database_errors():
                        sent = self.relay_once()
                except RetryableError as exc:
                    self.stats.retries += 1
                    failures += 1
                    if isinstance(exc, BrokerUnavailable):
                        self.publisher.reset()  # the round is retried whole, from the outbox
                    delay = backoff.delay(failures)
                    log.warning("relay.retry", error=str(exc)[:300], delay_s=round(delay, 2))
                    if self.observer is not None:
                        self.observer.failed(str(exc)[:300])
                    self._sleep(delay)
                    continue
                failures = 0
                if self.observer is not None:
                    self.observer.published(self._counts)
                if sent == 0:
                    if not forever:
                        break
                    self._sleep(self.settings.poll_interval_s)
        finally:
            self.stats.elapsed_s += time.monotonic() - started
        return self.stats

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _sleep(self, seconds: float) -> None:
        if self.stop is not None:
            self.stop.wait(seconds)
        else:
            time.sleep(seconds)

    # -- one round -------------------------------------------------------------------
    def relay_once(self) -> int:
        """Claim, publish, wait for acks, mark: one transaction. Returns rows published."""
        self._counts = {}
        with self.engine.begin() as conn:
            rows = self._claim(conn)
            if not rows:
                return 0
            for row in rows:
                payload = bytes(row["payload"])
                self.publisher.publish_raw(
                    row["topic"],
                    self.framing(payload) if self.framing else payload,
                    key=row["aggregate_id"],
                    event_id=row["event_id"],
                    event_type=row["event_type"],
                    occurred_at_ms=row["occurred_at_ms"],
                )
            # A PublishError (retryable) here rolls the round back: nothing is marked.
            self.publisher.flush(self.settings.flush_timeout_s)
            self._mark(conn, [row["id"] for row in rows])
        self.stats.published += len(rows)
        self.stats.rounds += 1
        for row in rows:
            key = (row["aggregate_type"], row["topic"])
            self._counts[key] = self._counts.get(key, 0) + 1
        return len(rows)

    def _claim(self, conn: Connection) -> list[RowMapping]:
        o = self.tables.outbox
        query = (
            select(
                o.c.id,
                o.c.aggregate_type,
                o.c.aggregate_id,
                o.c.aggregate_version,
                o.c.event_id,
                o.c.event_type,
                o.c.topic,
                o.c.payload,
                o.c.occurred_at_ms,
            )
            .where(o.c.published_at.is_(None))
            .order_by(o.c.id)
            .limit(self.settings.batch_size)
            .with_for_update(skip_locked=True)
        )
        claimed = list(conn.execute(query).mappings())
        if not claimed or conn.dialect.name != "postgresql":
            return claimed  # SQLite: BEGIN IMMEDIATE already excludes every other writer
        kept = self._in_order(conn, claimed)
        self.stats.deferred += len(claimed) - len(kept)
        return kept

    def _in_order(self, conn: Connection, claimed: Sequence[RowMapping]) -> list[RowMapping]:
        """Claimed rows that begin their aggregate's unpublished history, without gaps."""
        o = self.tables.outbox
        ids = sorted({r["aggregate_id"] for r in claimed})
        pending: dict[tuple[str, str], list[int]] = {}
        # A plain read sees rows other replicas hold locked (no waiting on them). One
        # array parameter instead of thousands of IN placeholders.
        query = select(o.c.aggregate_type, o.c.aggregate_id, o.c.aggregate_version).where(
            o.c.published_at.is_(None),
            o.c.aggregate_id == any_(bindparam("ids", ids, type_=ARRAY(String))),
        )
        for t, a, v in conn.execute(query):
            pending.setdefault((t, a), []).append(v)
        for versions in pending.values():
            versions.sort()
        position: dict[tuple[str, str], int] = {}
        kept = []
        for row in claimed:  # ordered by id, i.e. by version within an aggregate
            key = (row["aggregate_type"], row["aggregate_id"])
            i = position.get(key, 0)
            if i >= 0 and pending.get(key, [])[i : i + 1] == [row["aggregate_version"]]:
                kept.append(row)
                position[key] = i + 1
            else:
                position[key] = -1  # a gap: everything after it waits
        return kept

    def _mark(self, conn: Connection, ids: list[Any]) -> None:
        o = self.tables.outbox
        now = datetime.now(UTC)
        if conn.dialect.name == "postgresql":
            where = o.c.id == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
            conn.execute(o.update().where(where).values(published_at=now))
            return
        for start in range(0, len(ids), _MARK_CHUNK):
            part = ids[start : start + _MARK_CHUNK]
            conn.execute(o.update().where(o.c.id.in_(part)).values(published_at=now))


def outbox_backlog(
    engine: Engine, tables: CommandTables | None = None, *, now_ms: int | None = None
) -> list[Backlog]:
    """Per service: unpublished rows and the age of the oldest (the outbox alert's input)."""
    o = (tables or CommandTables()).outbox
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    query = (
        select(o.c.aggregate_type, func.count(), func.min(o.c.occurred_at_ms))
        .where(o.c.published_at.is_(None))
        .group_by(o.c.aggregate_type)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Backlog(t, int(n), max(0.0, (now_ms - int(oldest)) / 1000)) for t, n, oldest in rows]


def pending_count(engine: Engine, tables: CommandTables | None = None) -> int:
    """Unpublished outbox rows (a health signal: should hover near zero)."""
    o = (tables or CommandTables()).outbox
    with engine.connect() as conn:
        query = select(func.count()).select_from(o).where(o.c.published_at.is_(None))
        return int(conn.execute(query).scalar_one())
