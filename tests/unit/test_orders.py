"""The orders projection on a real database (SQLite and PostgreSQL), without a broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from producers import SampleEvent, order_events, with_noise
from projections import CheckpointStore, OrdersProjection, make_engine
from schemas import AvroSerde, SchemaCatalog
from tests.support.fakes import FakeMessage, ListSink
from tests.support.oracle import assert_orders_match, orders_oracle

TOPIC = "orders.orders"
SERDE = AvroSerde(SchemaCatalog.load())
Positions = dict[tuple[str, int], int | None]


def _messages(events: list[SampleEvent], partitions: int = 2) -> list[FakeMessage]:
    offsets = [0] * partitions
    out = []
    for ev in events:
        p = sum(ev.key.encode()) % partitions
        out.append(
            FakeMessage(
                TOPIC, p, offsets[p], SERDE.encode(ev.event_type, ev.record), ev.key.encode()
            )
        )
        offsets[p] += 1
    return out


@pytest.fixture
def processor(db_url: str) -> Iterator[BatchProcessor]:
    proc = BatchProcessor(
        engine=make_engine(db_url),
        projection=OrdersProjection(topic=TOPIC),
        serde=SERDE,
        checkpoints=CheckpointStore(),
        dead_letters=ListSink(),
        stats=RunStats(),
    )
    proc.ensure_schema()
    yield proc
    proc.engine.dispose()


def _run(
    proc: BatchProcessor, messages: list[FakeMessage], batch: int, positions: Positions
) -> None:
    for start in range(0, len(messages), batch):
        prepared = proc.prepare(messages[start : start + batch], positions)
        positions.update(proc.commit(prepared).positions)


def test_batches_fold_to_the_oracle_with_duplicates(processor: BatchProcessor, db_url: str) -> None:
    """Any batch size gives the oracle's summaries, customer stats and daily sales; dups count once."""
    events = with_noise(order_events(orders=400, seed=4), duplicate_ratio=0.15, seed=5)
    assert len(events) > 400
    positions: Positions = {(TOPIC, 0): None, (TOPIC, 1): None}
    _run(processor, _messages(events), 37, positions)
    model = assert_orders_match(db_url, events)
    assert len(model.summaries) == 400
    assert processor.stats.skipped_event_id == len(events) - 400
    assert processor.stats.applied == 400
    assert processor.stats.balanced()


def test_redelivered_offsets_change_nothing(processor: BatchProcessor, db_url: str) -> None:
    """Re-reading the whole topic (offsets at or below the checkpoint) adds nothing."""
    events = order_events(orders=120, seed=6)
    msgs = _messages(events)
    positions: Positions = {(TOPIC, 0): None, (TOPIC, 1): None}
    _run(processor, msgs, 50, positions)
    _run(processor, msgs, 50, positions)
    assert processor.stats.skipped_offset == len(msgs)
    assert processor.stats.applied == 120
    assert_orders_match(db_url, events)


def test_a_second_event_for_the_same_order_is_stale(processor: BatchProcessor, db_url: str) -> None:
    """A new event id for an already summarized order does not count the order again."""
    events = order_events(orders=30, seed=7)
    again = SampleEvent(
        "orders",
        events[3].event_type,
        events[3].key,
        {**events[3].record, "event_id": "00000000-0000-4000-8000-0000000000aa"},
    )
    positions: Positions = {(TOPIC, 0): None}
    _run(processor, _messages([*events, again], partitions=1), 20, positions)
    assert processor.stats.stale == 1
    assert_orders_match(db_url, [*events, again])


def test_money_is_exact_minor_units(processor: BatchProcessor, db_url: str) -> None:
    """Revenue sums stay exact integers beyond float precision (no rounding anywhere)."""
    base = order_events(orders=3, customers=1, seed=8)
    huge = 2**53 + 1  # not representable as a float
    events = []
    for i, ev in enumerate(base):
        lines = [{"sku": "BIG", "quantity": 1, "unit_price_minor": huge + i}]
        record = {**ev.record, "lines": lines, "total_minor": huge + i, "currency": "EUR"}
        events.append(SampleEvent("orders", ev.event_type, ev.key, record))
    positions: Positions = {(TOPIC, 0): None}
    _run(processor, _messages(events, partitions=1), 10, positions)
    model = assert_orders_match(db_url, events)
    [(_key, stats)] = model.customers.items()
    assert stats["revenue_minor"] == 3 * huge + 3
    with processor.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT revenue_minor FROM customer_stats_v1")).scalar_one()
    assert int(stored) == 3 * huge + 3
    assert isinstance(stored, int)


def test_oracle_is_not_trivial() -> None:
    """The sample spreads orders over several customers, currencies and days."""
    model = orders_oracle(order_events(orders=400, seed=4))
    assert len(model.customers) > 20
    assert len({c for _, c in model.daily}) == 3
    assert len(model.daily) > 3
