"""Event-id dedup: duplicates at new offsets never count twice (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from producers import blog_events, with_noise
from projections import ApplyResult, CheckpointStore, Event, EventLedger, Projection, make_engine
from projections._sql import insert_for
from schemas import AvroSerde, SchemaCatalog
from tests.support.fakes import FakeMessage, ListSink

TOPIC = "blog.posts"
SERDE = AvroSerde(SchemaCatalog.load())


class EventCounter(Projection):
    """A counter per event type: not idempotent, so it needs the ledger."""

    name = "counter"
    version = 1
    topics = (TOPIC,)
    idempotent_replay = False
    needs_event_dedup = True

    def define_tables(self, metadata: sa.MetaData) -> None:
        self.counts = sa.Table(
            self.table_name("event_counts"),
            metadata,
            sa.Column("event_type", sa.String(100), primary_key=True),
            sa.Column("n", sa.Integer, nullable=False),
        )

    def apply(self, conn: sa.Connection, events: Sequence[Event]) -> ApplyResult:
        per_type = Counter(e.event_type for e in events)
        if per_type:
            ins = insert_for(conn, self.counts)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[self.counts.c.event_type],
                    set_={"n": self.counts.c.n + ins.excluded.n},
                ),
                [{"event_type": t, "n": n} for t, n in sorted(per_type.items())],
            )
        return ApplyResult(applied=len(events))


@pytest.fixture
def processor(db_url: str) -> Iterator[BatchProcessor]:
    proc = BatchProcessor(
        engine=make_engine(db_url),
        projection=EventCounter(),
        serde=SERDE,
        checkpoints=CheckpointStore(),
        dead_letters=ListSink(),
        stats=RunStats(),
    )
    proc.ensure_schema()
    yield proc
    proc.engine.dispose()


def test_duplicates_at_new_offsets_count_once(processor: BatchProcessor) -> None:
    """Re-published events (same id, later offset, same or later batch) are skipped by id."""
    events = with_noise(blog_events(posts=200, seed=3), duplicate_ratio=0.2, seed=9)
    unique_ids = {e.record["event_id"] for e in events}
    assert len(unique_ids) < len(events)
    msgs = [
        FakeMessage(TOPIC, 0, i, SERDE.encode(e.event_type, e.record)) for i, e in enumerate(events)
    ]
    positions: dict[tuple[str, int], int | None] = {(TOPIC, 0): None}
    for start in range(0, len(msgs), 23):
        batch = processor.prepare(msgs[start : start + 23], positions)
        positions.update(processor.commit(batch).positions)
    expected = Counter(e.event_type for e in {e.record["event_id"]: e for e in events}.values())
    with processor.engine.connect() as conn:
        actual = dict(conn.execute(sa.text("SELECT event_type, n FROM event_counts_v1")).all())
    assert actual == dict(expected)
    assert processor.stats.skipped_event_id == len(events) - len(unique_ids)
    assert processor.stats.balanced()


def test_purge_keeps_the_ledger_bounded(processor: BatchProcessor) -> None:
    """Ids older than the retention window are deleted; recent ones stay."""
    ledger = EventLedger()
    events = [Event(TOPIC, 0, i, "t", f"id-{i}", {}) for i in range(10)]
    with processor.engine.begin() as conn:
        assert len(ledger.first_seen(conn, "counter_v1", events)) == 10
        conn.execute(
            ledger.table.update()
            .where(ledger.table.c.event_id.in_(["id-0", "id-1"]))
            .values(processed_at=datetime.now(UTC) - timedelta(days=30))
        )
        assert ledger.purge(conn, "counter_v1", datetime.now(UTC) - timedelta(days=7)) == 2
        left = conn.execute(sa.select(sa.func.count()).select_from(ledger.table)).scalar_one()
    assert left == 8
