"""The command side for tests: services on a database, the outbox as the oracle's input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from producers import BlogService, CommandTables, OrderService, Outbox, SampleEvent
from projections import make_engine
from schemas import AvroSerde, SchemaCatalog


@dataclass
class CommandSide:
    engine: sa.Engine
    tables: CommandTables
    outbox: Outbox
    blog: BlogService
    orders: OrderService


@contextmanager
def command_side(
    url: str,
    *,
    blog_topic: str = "blog.posts",
    orders_topic: str = "orders.orders",
    outbox_class: type[Outbox] = Outbox,
) -> Iterator[CommandSide]:
    """Blog and order services on ``url`` (tables created); the engine is disposed after."""
    engine = make_engine(url)
    tables = CommandTables()
    tables.create(engine)
    outbox = outbox_class(tables=tables, serde=AvroSerde(SchemaCatalog.load()))
    try:
        yield CommandSide(
            engine,
            tables,
            outbox,
            BlogService(engine, outbox=outbox, topic=blog_topic),
            OrderService(engine, outbox=outbox, topic=orders_topic),
        )
    finally:
        engine.dispose()


def outbox_events(url: str) -> list[SampleEvent]:
    """Every outbox row decoded, in id order, as the oracle's input."""
    serde = AvroSerde(SchemaCatalog.load())
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT aggregate_type, aggregate_id, payload FROM outbox ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    out = []
    for agg, key, payload in rows:
        decoded = serde.decode(bytes(payload))
        out.append(SampleEvent(agg, decoded.event_type, key, decoded.record))
    return out


def unpublished(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                ).scalar_one()
            )
    finally:
        engine.dispose()
