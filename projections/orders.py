"""The ``orders`` projection: order summaries, customer statistics and daily sales.

Three read models from ``orders.OrderFulfilled``, written in one transaction:

* ``order_summaries``: one row per order (customer, lines, line count, total, currency,
  fulfilled at);
* ``customer_stats``: per customer and currency, orders count, lifetime revenue, first
  and last order time;
* ``daily_sales``: per UTC day and currency, orders count and revenue.

Money is integer minor units of the order's currency end to end (``BIGINT``); nothing
here ever holds it as a float.

Sums and counts are not idempotent, so the projection sets ``needs_event_dedup``: the
runtime's offset checkpoint skips redelivered offsets and the event-id ledger skips a
re-published event at a new offset, both in this batch's transaction. On top, an order
counts once: the summary row is inserted ``ON CONFLICT DO NOTHING … RETURNING`` and only
orders that come back feed the counters. A second ``OrderFulfilled`` for an order
already summarized (a different event id for the same order) is counted as stale.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    func,
    null,
)

from projections._base import ApplyResult, Projection
from projections._event import Event, OrderFulfilledEvent, known_events
from projections._sql import chunks, insert_for
from schemas.events import ORDER_FULFILLED

__all__ = ["ORDER_FULFILLED", "OrdersProjection"]

# Eleven columns per summary row; stay far below the bound-parameter limits.
_ROWS_PER_INSERT = 1_000
_BIGINT_MAX = 2**63 - 1


@dataclass(slots=True)
class _Totals:
    """Counter deltas of one key (customer+currency or day+currency) in one batch."""

    orders: int = 0
    revenue_minor: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, total_minor: int, at: datetime) -> None:
        self.orders += 1
        self.revenue_minor += total_minor
        self.first = at if self.first is None or at < self.first else self.first
        self.last = at if self.last is None or at > self.last else self.last


class OrdersProjection(Projection):
    """Order summaries, customer stats and daily sales; each order counts exactly once."""

    name = "orders"
    version = 1
    idempotent_replay = False  # counters: a replay into the same tables would double them
    needs_event_dedup = True

    def __init__(self, *, topic: str = "orders.orders", generation: int | None = None) -> None:
        self.topics = (topic,)
        super().__init__(generation=generation)

    def define_tables(self, metadata: MetaData) -> None:
        self.order_summaries = Table(
            self.table_name("order_summaries"),
            metadata,
            Column("order_id", String(200), primary_key=True),
            Column("customer_id", String(200), nullable=False, index=True),
            Column("customer_email", String(320), nullable=False),
            Column("line_count", Integer, nullable=False),
            Column("lines", Text, nullable=False),  # JSON: [{sku, quantity, unit_price_minor}]
            Column("total_minor", BigInteger, nullable=False),
            Column("currency", String(3), nullable=False),
            Column("fulfilled_at", DateTime(timezone=True), nullable=False),
            Column("event_id", String(64), nullable=False),
        )
        self.customer_stats = Table(
            self.table_name("customer_stats"),
            metadata,
            Column("customer_id", String(200), primary_key=True),
            Column("currency", String(3), primary_key=True),
            Column("orders_count", Integer, nullable=False),
            Column("revenue_minor", BigInteger, nullable=False),
            Column("first_order_at", DateTime(timezone=True), nullable=False),
            Column("last_order_at", DateTime(timezone=True), nullable=False),
        )
        self.daily_sales = Table(
            self.table_name("daily_sales"),
            metadata,
            Column("day", Date, primary_key=True),
            Column("currency", String(3), primary_key=True),
            Column("orders_count", Integer, nullable=False),
            Column("revenue_minor", BigInteger, nullable=False),
        )

    def apply(self, conn: Connection, events: Sequence[Event]) -> ApplyResult:
        rows: dict[str, dict[str, Any]] = {}
        stale = 0
        for event in known_events(events):
            if event.event_type != ORDER_FULFILLED:
                continue
            row = _summary_row(event)
            if row["order_id"] in rows:
                stale += 1  # the same order twice in one batch: the first one counts
            else:
                rows[row["order_id"]] = row
        if not rows:
            return ApplyResult(applied=0, stale=stale)
        new_ids = self._insert_summaries(conn, list(rows.values()))
        stale += len(rows) - len(new_ids)
        customers: dict[tuple[str, str], _Totals] = {}
        days: dict[tuple[date, str], _Totals] = {}
        for order_id in new_ids:
            row = rows[order_id]
            at: datetime = row["fulfilled_at"]
            customers.setdefault((row["customer_id"], row["currency"]), _Totals()).add(
                row["total_minor"], at
            )
            days.setdefault((at.date(), row["currency"]), _Totals()).add(row["total_minor"], at)
        self._add_customer_stats(conn, customers)
        self._add_daily_sales(conn, days)
        return ApplyResult(applied=len(new_ids), stale=stale)

    def _insert_summaries(self, conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
        """Insert summaries of orders not seen before; return the order ids that were new."""
        t = self.order_summaries
        new: set[str] = set()
        for part in chunks(sorted(rows, key=lambda r: r["order_id"]), _ROWS_PER_INSERT):
            stmt = (
                insert_for(conn, t)
                .values(list(part))
                .on_conflict_do_nothing()
                .returning(t.c.order_id)
            )
            new.update(conn.execute(stmt).scalars())
        return new

    def _add_customer_stats(self, conn: Connection, deltas: dict[tuple[str, str], _Totals]) -> None:
        if not deltas:
            return
        t = self.customer_stats
        insert = insert_for(conn, t)
        stmt = insert.on_conflict_do_update(
            index_elements=[t.c.customer_id, t.c.currency],
            set_={
                "orders_count": t.c.orders_count + insert.excluded.orders_count,
                "revenue_minor": _checked_sum(
                    conn, t.c.revenue_minor, insert.excluded.revenue_minor
                ),
                "first_order_at": _least(conn, t.c.first_order_at, insert.excluded.first_order_at),
                "last_order_at": _greatest(conn, t.c.last_order_at, insert.excluded.last_order_at),
            },
        )
        # Sorted keys: concurrent consumers lock rows in one order and never deadlock.
        conn.execute(
            stmt,
            [
                {
                    "customer_id": customer,
                    "currency": currency,
                    "orders_count": d.orders,
                    "revenue_minor": d.revenue_minor,
                    "first_order_at": d.first,
                    "last_order_at": d.last,
                }
                for (customer, currency), d in sorted(deltas.items())
            ],
        )

    def _add_daily_sales(self, conn: Connection, deltas: dict[tuple[date, str], _Totals]) -> None:
        if not deltas:
            return
        t = self.daily_sales
        insert = insert_for(conn, t)
        stmt = insert.on_conflict_do_update(
            index_elements=[t.c.day, t.c.currency],
            set_={
                "orders_count": t.c.orders_count + insert.excluded.orders_count,
                "revenue_minor": _checked_sum(
                    conn, t.c.revenue_minor, insert.excluded.revenue_minor
                ),
            },
        )
        conn.execute(
            stmt,
            [
                {
                    "day": day,
                    "currency": currency,
                    "orders_count": d.orders,
                    "revenue_minor": d.revenue_minor,
                }
                for (day, currency), d in sorted(deltas.items())
            ],
        )


def _summary_row(event: OrderFulfilledEvent) -> dict[str, Any]:
    r = event.record
    lines = [
        {
            "sku": line["sku"],
            "quantity": int(line["quantity"]),
            "unit_price_minor": int(line["unit_price_minor"]),
        }
        for line in r["lines"]
    ]
    return {
        "order_id": r["order_id"],
        "customer_id": r["customer_id"],
        "customer_email": r["customer_email"],
        "line_count": len(lines),
        "lines": json.dumps(lines),
        "total_minor": int(r["total_minor"]),
        "currency": r["currency"],
        "fulfilled_at": r["fulfilled_at"].astimezone(UTC),
        "event_id": str(r["event_id"]),
    }


def _checked_sum(conn: Connection, a: Any, b: Any) -> ColumnElement[Any]:
    """``a + b`` that fails instead of overflowing a BIGINT.

    PostgreSQL refuses the overflow itself; SQLite would silently turn the sum into a
    float, so there the sum becomes NULL and the NOT NULL column refuses the row: the
    event is isolated as poison (``RejectedByDatabase``) like on PostgreSQL.
    """
    total: ColumnElement[Any] = a + b
    if conn.dialect.name == "postgresql":
        return total
    return case((a > _BIGINT_MAX - b, null()), else_=total)


def _least(conn: Connection, a: Any, b: Any) -> ColumnElement[Any]:
    # SQLite's two-argument min() is scalar; PostgreSQL spells it LEAST.
    return func.least(a, b) if conn.dialect.name == "postgresql" else func.min(a, b)


def _greatest(conn: Connection, a: Any, b: Any) -> ColumnElement[Any]:
    return func.greatest(a, b) if conn.dialect.name == "postgresql" else func.max(a, b)
