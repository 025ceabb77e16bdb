"""The ``orders`` workload: order fulfilments written outside this repository's producers.

100,000 orders (``--orders-events``) of 5,000 customers, each one
``orders.OrderFulfilled`` **v1** event (single-object encoding, the publisher's headers,
key = order id, 4 partitions). An order has 1-5 lines (200 SKUs, quantity 1-4, unit
prices 50-20,000 minor units), a currency drawn from EUR 60 %, USD 25 %, GBP 10 %,
JPY 5 %, and a ``fulfilled_at`` (whole milliseconds) that moves forward over 30 days
with up to an hour of jitter, so daily sales cross midnight in both directions.

Noise, as an outbox relay and a retrying service produce it, each scheduled 1-5,000
events after its original (so often in the same batch, often not):

* 2 % **re-published duplicates**: the same bytes, the same event id, a new offset;
* 0.5 % **second fulfilments**: the same order again under a new event id, with other
  lines, total and time. The order's first event counts; the second is stale.

Nothing here comes from ``producers.sample``. :class:`OrdersOracle` is the expected end
state, computed while generating: each order's summary (its first fulfilment), the
stats per customer and currency, the sales per UTC day and currency.
"""

from __future__ import annotations

import heapq
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.workload import PARTITIONS, Published, _publisher, create_topic
from schemas import AvroSerde, SchemaCatalog
from schemas.events import ORDER_FULFILLED

__all__ = ["OrdersOracle", "Summary", "orders_events", "publish_orders"]

CURRENCIES = ("EUR", "USD", "GBP", "JPY")
_WEIGHTS = (60, 25, 10, 5)
SKUS = [f"SKU-{i:04d}" for i in range(200)]
_EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
_SPAN = timedelta(days=30)
DUPLICATE_RATIO = 0.02
REFULFIL_RATIO = 0.005

#: (customer_id, customer_email, lines as (sku, quantity, unit_price_minor), total, currency, at)
Summary = tuple[str, str, tuple[tuple[str, int, int], ...], int, str, datetime]


@dataclass
class OrdersOracle:
    """The end state the workload implies; counters are derived from the first fulfilments."""

    summaries: dict[str, Summary] = field(default_factory=dict)
    events: int = 0
    duplicates: int = 0
    second_fulfilments: int = 0

    def customer_stats(self) -> dict[tuple[str, str], tuple[int, int, datetime, datetime]]:
        """(customer, currency) → (orders, revenue minor, first order at, last order at)."""
        out: dict[tuple[str, str], tuple[int, int, datetime, datetime]] = {}
        for customer, _, _, total, currency, at in self.summaries.values():
            key = (customer, currency)
            if key in out:
                n, rev, first, last = out[key]
                out[key] = (n + 1, rev + total, min(first, at), max(last, at))
            else:
                out[key] = (1, total, at, at)
        return out

    def daily_sales(self) -> dict[tuple[date, str], tuple[int, int]]:
        """(UTC day, currency) → (orders, revenue minor)."""
        out: dict[tuple[date, str], tuple[int, int]] = {}
        for _, _, _, total, currency, at in self.summaries.values():
            key = (at.astimezone(UTC).date(), currency)
            n, rev = out.get(key, (0, 0))
            out[key] = (n + 1, rev + total)
        return out


def _order(
    rng: random.Random, order_id: str, customer: int, at: datetime
) -> tuple[dict[str, Any], Summary]:
    lines = tuple(
        (sku, rng.randint(1, 4), rng.randint(50, 20_000))
        for sku in rng.sample(SKUS, rng.randint(1, 5))
    )
    total = sum(q * p for _, q, p in lines)
    currency = rng.choices(CURRENCIES, _WEIGHTS)[0]
    customer_id, email = f"cust-{customer:05d}", f"customer{customer:05d}@example.test"
    record = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "order_id": order_id,
        "customer_id": customer_id,
        "customer_email": email,
        "lines": [{"sku": s, "quantity": q, "unit_price_minor": p} for s, q, p in lines],
        "total_minor": total,
        "currency": currency,
        "fulfilled_at": at,
    }
    return record, (customer_id, email, lines, total, currency, at)


def orders_events(
    *, orders: int = 100_000, customers: int = 5_000, seed: int = 16, oracle: OrdersOracle
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(order_id, record)`` in produce order, noise included; fills ``oracle``."""
    rng = random.Random(seed)
    pending: list[tuple[int, int, str, dict[str, Any]]] = []  # (due index, tie, key, record)
    position = 0

    def emit(order_id: str, record: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal position
        while pending and pending[0][0] <= position:
            _, _, key, late = heapq.heappop(pending)
            position += 1
            yield key, late
        position += 1
        yield order_id, record

    step_ms = _SPAN / timedelta(milliseconds=1) / max(1, orders)
    for n in range(orders):
        order_id = f"ord-{n:07d}"
        jitter = rng.randint(-3_600_000, 3_600_000)
        at = _EPOCH + timedelta(milliseconds=max(0, int(n * step_ms) + jitter))
        record, summary = _order(rng, order_id, rng.randrange(customers), at)
        oracle.summaries[order_id] = summary
        yield from emit(order_id, record)
        roll = rng.random()
        if roll < DUPLICATE_RATIO:
            oracle.duplicates += 1
            heapq.heappush(pending, (position + rng.randint(1, 5_000), n, order_id, record))
        elif roll < DUPLICATE_RATIO + REFULFIL_RATIO:
            oracle.second_fulfilments += 1
            later = at + timedelta(milliseconds=rng.randint(60_000, 86_400_000))
            again, _ = _order(rng, order_id, rng.randrange(customers), later)
            heapq.heappush(pending, (position + rng.randint(1, 5_000), n, order_id, again))
    while pending:
        _, _, key, late = heapq.heappop(pending)
        yield key, late


def publish_orders(
    bootstrap: str, topic: str, *, orders: int = 100_000, customers: int = 5_000
) -> tuple[Published, OrdersOracle]:
    """Publish the workload (v1 bytes, the publisher's headers); wait for every ack.

    A duplicate is the same record object again: the same bytes and event id.
    """
    create_topic(bootstrap, topic, projection="orders")
    serde = AvroSerde(SchemaCatalog.load())
    publisher = _publisher(bootstrap)
    oracle = OrdersOracle()
    started = time.monotonic()
    count = 0
    for order_id, record in orders_events(orders=orders, customers=customers, oracle=oracle):
        event_id = record["event_id"]
        value = serde.encode(ORDER_FULFILLED, record, version=1)  # deterministic bytes
        publisher.publish_raw(
            topic, value, key=order_id, event_id=event_id, event_type=ORDER_FULFILLED
        )
        count += 1
        if count % 10_000 == 0:
            publisher.poll(0)
    publisher.flush(120)
    oracle.events = count
    assert PARTITIONS == 4
    return Published(topic, count, len(oracle.summaries), time.monotonic() - started), oracle
