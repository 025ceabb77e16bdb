"""The net under validation: a value the database itself refuses is poison, isolated per event.

Validation is switched off here (a user's projection or a rule not written yet would let
such a value through): on PostgreSQL a too-wide id, a NUL and a BIGINT overflow are
refused by the database; on SQLite an out-of-range integer is refused by the driver.
Each refused event is dead-lettered as ``RejectedByDatabase``; the rest of the batch applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from producers import SampleEvent, blog_events, order_events
from projections import BlogProjection, CheckpointStore, OrdersProjection, Projection, make_engine
from schemas import AvroSerde, SchemaCatalog
from tests.support.fakes import FakeMessage, ListSink
from tests.support.oracle import assert_blog_matches, assert_orders_match

UNCHECKED = AvroSerde(SchemaCatalog.load(), validate_events=False)


@pytest.fixture
def engines() -> Iterator[list[sa.Engine]]:
    made: list[sa.Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def _run(
    url: str, projection: Projection, events: list[SampleEvent], engines: list[sa.Engine]
) -> tuple[BatchProcessor, ListSink]:
    engines.append(make_engine(url))
    sink = ListSink()
    proc = BatchProcessor(
        engine=engines[-1],
        projection=projection,
        serde=UNCHECKED,
        checkpoints=CheckpointStore(),
        dead_letters=sink,
        stats=RunStats(),
    )
    proc.ensure_schema()
    topic = projection.topics[0]
    msgs = [
        FakeMessage(
            topic,
            0,
            offset,
            UNCHECKED.encode(ev.event_type, ev.record),
            ev.key.encode(),
            [("event_id", ev.record["event_id"].encode())],
        )
        for offset, ev in enumerate(events)
    ]
    proc.commit(proc.prepare(msgs, {(topic, 0): None}))
    return proc, sink


def _hostile(ev: SampleEvent, n: int, **changes: object) -> SampleEvent:
    record = {**ev.record, "event_id": f"33333333-0000-4000-8000-{n:012d}", **changes}
    return SampleEvent(ev.aggregate, ev.event_type, f"hostile-{n}", record)


def test_blog_values_postgres_refuses_are_dead_lettered(
    pg_url: str, engines: list[sa.Engine], caplog: pytest.LogCaptureFixture
) -> None:
    """A 201-character post id and author, a NUL in a title: RejectedByDatabase each; the rest applies; no parameters logged."""
    good = blog_events(posts=8, seed=173)
    template = next(e for e in good if e.event_type == "blog.BlogPostUpdated")
    bad = [
        _hostile(template, 1, post_id="p" * 201),
        _hostile(template, 2, post_id="h-author", author="secret-" * 40),
        _hostile(template, 3, post_id="h-title", title="a\x00b"),
    ]
    stream = good[:5] + bad[:2] + good[5:9] + bad[2:] + good[9:]
    caplog.set_level(logging.DEBUG)
    proc, sink = _run(pg_url, BlogProjection(topic="blog.hostile"), stream, engines)
    assert sorted(d.message.key() for d in sink.sent) == [b"hostile-1", b"hostile-2", b"hostile-3"]
    assert {type(d.error).__name__ for d in sink.sent} == {"RejectedByDatabase"}
    assert_blog_matches(pg_url, good)
    assert proc.stats.dead_lettered == 3
    assert "secret-" not in caplog.text


def test_money_overflow_is_refused_on_both_databases(db_url: str, engines: list[sa.Engine]) -> None:
    """Two orders of 2**63-1 for one customer overflow the BIGINT sums: the second is dead-lettered, never a crash."""
    good = order_events(orders=10, seed=174)
    line = [{"sku": "S", "quantity": 1, "unit_price_minor": 2**63 - 1}]
    bad = [
        _hostile(
            good[0],
            n,
            order_id=f"huge-{n}",
            customer_id="whale",
            lines=line,
            total_minor=2**63 - 1,
            fulfilled_at=datetime(2030, 1, 1, tzinfo=UTC),
        )
        for n in (1, 2)
    ]
    stream = good[:4] + bad + good[4:]
    proc, sink = _run(db_url, OrdersProjection(topic="orders.hostile"), stream, engines)
    assert [d.message.key() for d in sink.sent] == [b"hostile-2"]
    assert {type(d.error).__name__ for d in sink.sent} == {"RejectedByDatabase"}
    assert_orders_match(db_url, good[:4] + bad[:1] + good[4:])
    assert proc.stats.dead_lettered == 1
