"""Test machinery for the command side: services on a database, the outbox, topic reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

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


@dataclass
class Record:
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: bytes = field(repr=False)


def read_topic(
    bootstrap: str, topic: str, *, expected: int, timeout_s: float = 60.0, settle_s: float = 1.0
) -> list[Record]:
    """Every message of ``topic`` from the beginning: at least ``expected`` of them, then
    ``settle_s`` more polling so that extra (duplicate) messages would show up too."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "read-topic-unused",
            "enable.auto.commit": False,
            "log.connection.close": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while time.monotonic() < deadline:
            if len(out) >= expected and settle_until is None:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() > settle_until:
                break
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            headers = {k: (v or b"").decode() for k, v in (msg.headers() or [])}
            out.append(
                Record(
                    msg.partition(),
                    msg.offset(),
                    (msg.key() or b"").decode(),
                    headers,
                    msg.value() or b"",
                )
            )
        return out
    finally:
        consumer.close()
