"""Domain rules an event must satisfy beyond its Avro schema.

A schema-valid event that breaks one of these is poison (:class:`InvalidEventError`):
applying it would corrupt a read model, and retrying will never make it valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from schemas.errors import InvalidEventError
from schemas.events import BLOG_POST_DELETED, BLOG_POST_UPDATED, ORDER_FULFILLED

__all__ = ["validate"]

Record = Mapping[str, Any]


def _blog_post(record: Record) -> None:
    if not record["post_id"]:
        raise InvalidEventError("post_id is empty")
    if record["version"] < 1:
        raise InvalidEventError(f"version must be >= 1, got {record['version']}")


def _blog_post_updated(record: Record) -> None:
    _blog_post(record)
    for tag in record["tags"]:
        if not tag or len(tag) > 64:
            raise InvalidEventError(f"tag {tag!r} must be 1-64 characters")


def _order_fulfilled(record: Record) -> None:
    if not record["order_id"] or not record["customer_id"]:
        raise InvalidEventError("order_id and customer_id must not be empty")
    currency = record["currency"]
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise InvalidEventError(f"currency {currency!r} is not an ISO 4217 code")
    if not record["lines"]:
        raise InvalidEventError("an order needs at least one line")
    total = 0
    for line in record["lines"]:
        if line["quantity"] <= 0:
            raise InvalidEventError(f"line {line['sku']!r} has quantity {line['quantity']}")
        if line["unit_price_minor"] < 0:
            raise InvalidEventError(f"line {line['sku']!r} has a negative price")
        total += line["quantity"] * line["unit_price_minor"]
    if total != record["total_minor"]:
        raise InvalidEventError(f"total_minor {record['total_minor']} != sum of lines {total}")


_RULES: dict[str, Callable[[Record], None]] = {
    BLOG_POST_UPDATED: _blog_post_updated,
    BLOG_POST_DELETED: _blog_post,
    ORDER_FULFILLED: _order_fulfilled,
}


def validate(event_type: str, record: Record) -> None:
    """Raise :class:`InvalidEventError` when ``record`` breaks a rule of ``event_type``."""
    rule = _RULES.get(event_type)
    if rule is not None:
        try:
            rule(record)
        except (KeyError, TypeError) as exc:  # a field the rule needs is missing or mistyped
            raise InvalidEventError(f"{event_type}: {exc!r}") from exc
