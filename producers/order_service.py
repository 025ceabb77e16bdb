"""Orders, command side: place an order, then fulfil it (which emits ``orders.OrderFulfilled``).

Placing writes state only (version 1, no event: the contract has no ``OrderPlaced``
yet and read models only count fulfilled orders). Fulfilling bumps the version and
appends the event to the outbox in the same transaction; an order is fulfilled once.
Money is integer minor units, as in the schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from producers._rules import check_id, check_order
from producers.command_errors import AggregateNotFound, InvalidCommand, VersionConflict
from producers.outbox import CommandResult, Outbox
from schemas.events import ORDER_FULFILLED

__all__ = ["ORDER_FULFILLED", "OrderService"]


def _now() -> datetime:
    return datetime.now(UTC)


class OrderService:
    """The order aggregate's commands. Thread-safe: each call is one transaction."""

    def __init__(
        self,
        engine: Engine,
        *,
        outbox: Outbox,
        topic: str = "orders.orders",
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.tables = outbox.tables
        self.topic = topic
        self._clock = clock

    def place(
        self,
        *,
        customer_id: str,
        customer_email: str,
        currency: str,
        lines: Sequence[dict[str, Any]],
        order_id: str | None = None,
    ) -> CommandResult:
        """Record a new order (version 1); lines have sku, quantity, unit_price_minor."""
        check_order(
            customer_id=customer_id, customer_email=customer_email, currency=currency, lines=lines
        )
        if order_id is not None:
            check_id("order_id", order_id)
        order_id = order_id or f"order-{uuid.uuid4().hex}"
        t = self.tables
        total = sum(int(x["quantity"]) * int(x["unit_price_minor"]) for x in lines)
        try:
            with self.engine.begin() as conn:
                found = conn.execute(
                    select(t.orders.c.order_id).where(t.orders.c.order_id == order_id)
                )
                if found.first():
                    raise InvalidCommand([f"order_id: {order_id!r} already exists"])
                conn.execute(
                    t.orders.insert().values(
                        order_id=order_id,
                        customer_id=customer_id,
                        customer_email=customer_email,
                        currency=currency,
                        total_minor=total,
                        status="placed",
                        placed_at=self._clock(),
                        version=1,
                    )
                )
                conn.execute(
                    t.order_lines.insert(),
                    [
                        {
                            "order_id": order_id,
                            "line_no": i,
                            "sku": str(x["sku"]),
                            "quantity": int(x["quantity"]),
                            "unit_price_minor": int(x["unit_price_minor"]),
                        }
                        for i, x in enumerate(lines)
                    ],
                )
        except IntegrityError:  # a concurrent place of the same id won the race
            raise InvalidCommand([f"order_id: {order_id!r} already exists"]) from None
        return CommandResult(order_id, 1)

    def fulfill(self, order_id: str, *, expected_version: int | None = None) -> CommandResult:
        """Mark a placed order fulfilled and emit ``orders.OrderFulfilled``."""
        t = self.tables
        now = self._clock()
        with self.engine.begin() as conn:
            order = conn.execute(
                select(t.orders).where(t.orders.c.order_id == order_id).with_for_update()
            ).first()
            if order is None:
                raise AggregateNotFound("order", order_id)
            if expected_version is not None and expected_version != order.version:
                raise VersionConflict(order_id, expected=expected_version, current=order.version)
            if order.status != "placed":
                raise VersionConflict(
                    order_id, expected=None, current=order.version, reason="is already fulfilled"
                )
            version = order.version + 1
            conn.execute(
                t.orders.update()
                .where(t.orders.c.order_id == order_id, t.orders.c.version == order.version)
                .values(status="fulfilled", fulfilled_at=now, version=version)
            )
            lines = conn.execute(
                select(
                    t.order_lines.c.sku, t.order_lines.c.quantity, t.order_lines.c.unit_price_minor
                )
                .where(t.order_lines.c.order_id == order_id)
                .order_by(t.order_lines.c.line_no)
            ).mappings()
            event = self.outbox.append(
                conn,
                topic=self.topic,
                aggregate_type="orders",
                aggregate_id=order_id,
                aggregate_version=version,
                event_type=ORDER_FULFILLED,
                record={
                    "event_id": self.outbox.new_event_id(),
                    "order_id": order_id,
                    "customer_id": order.customer_id,
                    "customer_email": order.customer_email,
                    "lines": [dict(x) for x in lines],
                    "total_minor": order.total_minor,
                    "currency": order.currency,
                    "fulfilled_at": now,
                },
            )
            return CommandResult.of(event)
