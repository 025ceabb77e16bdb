"""Domain rules an event must satisfy beyond its Avro schema.

A schema-valid event that breaks one of these is poison (:class:`InvalidEventError`):
applying it would corrupt a read model, and retrying will never make it valid.

Some rules follow from the read-model tables, so that a database never has to reject
a row (widths, NUL, money bounds): identifiers fit their ``VARCHAR(200)`` columns, an
e-mail address its ``VARCHAR(320)``; no text holds a NUL (PostgreSQL's ``text`` cannot);
identifiers hold no control characters (they end up in mail headers and URLs); an
order's money stays below :data:`MAX_ORDER_TOTAL_MINOR`, so one order never overflows a
``BIGINT`` and the sums in ``customer_stats`` and ``daily_sales`` need more than 922 such
orders of one customer or day to do so — and then the database refuses the sum (the
orders projection checks it on SQLite too). A value a database refuses is poison all the
same (``projections.database_errors``), isolated by the batch's bisection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from schemas.errors import InvalidEventError
from schemas.events import BLOG_POST_DELETED, BLOG_POST_UPDATED, ORDER_FULFILLED

__all__ = [
    "MAX_EMAIL_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_ORDER_TOTAL_MINOR",
    "check_email_address",
    "validate",
]

Record = Mapping[str, Any]

#: widths of the identifier columns of the read models (post_id, author, order_id …)
MAX_ID_LENGTH = 200
#: RFC 5321's limit on a forward path, the width of the e-mail columns
MAX_EMAIL_LENGTH = 320
#: 10**16 minor units (100 trillion EUR) per order; a BIGINT holds 922 of them
MAX_ORDER_TOTAL_MINOR = 10**16
_MAX_TAG_LENGTH = 64

# One bare addr-spec: no display name, no list, no comment, no quoting, no whitespace.
_ADDRESS = re.compile(r"[^@\s,;:<>()\[\]\\\"]+@[^@\s,;:<>()\[\]\\\"]+\.[^@\s,;:<>()\[\]\\\".]+")


#: types a decoded value has that can hold no text: skipped without further checks
_NO_TEXT = frozenset({int, float, bool, type(None), bytes, datetime, date, UUID, Decimal})


def _has_nul(value: Any) -> bool:
    """Whether a NUL is anywhere in ``value`` (the fast pass, per event: no paths built)."""
    kind = type(value)
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
        value = value.values()
    for item in value:
        kind = type(item)
        if kind is str:
            if "\x00" in item:
                return True
        elif kind in _NO_TEXT:
            continue
        elif kind is list or kind is dict:
            if _has_nul(item):
                return True
        elif isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, (Mapping, list, tuple)) and _has_nul(item):
            return True
    return False


def _nul_path(value: Any, path: str) -> str | None:
    """Where the first NUL is (``title``, ``lines[2].sku``), for the error message."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Any = ()
    if isinstance(value, Mapping):
        items = ((f"{path}.{name}" if path else str(name), item) for name, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    for where, item in items:
        found = _nul_path(item, where)
        if found is not None:
            return found
    return None


def _no_nul(record: Record) -> None:
    """Reject a NUL anywhere in the record: PostgreSQL text cannot store one."""
    # The cheap check runs per event, the path is looked for only for the poison's message.
    if _has_nul(record):
        raise InvalidEventError(f"{_nul_path(record, '') or 'the record'} contains a NUL character")


#: Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _identifier(record: Record, name: str, *, empty_ok: bool = False) -> None:
    value: str = record[name]
    if not value and not empty_ok:
        raise InvalidEventError(f"{name} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidEventError(f"{name} is {len(value)} characters, at most {MAX_ID_LENGTH}")
    if _CONTROL.search(value) is not None:
        raise InvalidEventError(f"{name} contains a control character")


def check_email_address(value: str) -> str | None:
    """Why ``value`` is not exactly one plain e-mail address, or ``None`` when it is."""
    if len(value) > MAX_EMAIL_LENGTH:
        return f"is {len(value)} characters, at most {MAX_EMAIL_LENGTH}"
    if _ADDRESS.fullmatch(value) is None:
        return "is not one plain address like name@example.com (no list, no display name)"
    return None


#: ``timestamp-millis`` a datetime can hold (years 1-9999), for records decoded without
#: logical types (``Projection.logical_types``): decoding with them refuses the rest
_MIN_MS, _MAX_MS = -62_135_596_800_000, 253_402_300_799_999


def _timestamps(record: Record, *names: str) -> None:
    for name in names:
        value = record[name]
        if type(value) is int and not _MIN_MS <= value <= _MAX_MS:
            raise InvalidEventError(f"{name} {value} ms is outside the years 1-9999")


def _blog_post(record: Record) -> None:
    _identifier(record, "post_id")
    if record["version"] < 1:
        raise InvalidEventError(f"version must be >= 1, got {record['version']}")


def _blog_post_updated(record: Record) -> None:
    _blog_post(record)
    _timestamps(record, "creation_date", "updated_at")
    _identifier(record, "author", empty_ok=True)
    for tag in record["tags"]:
        if not tag or len(tag) > _MAX_TAG_LENGTH:
            raise InvalidEventError(f"tag {tag[:80]!r} must be 1-{_MAX_TAG_LENGTH} characters")


def _blog_post_deleted(record: Record) -> None:
    _blog_post(record)
    _timestamps(record, "deleted_at")


def _order_fulfilled(record: Record) -> None:
    _identifier(record, "order_id")
    _timestamps(record, "fulfilled_at")
    _identifier(record, "customer_id")
    problem = check_email_address(record["customer_email"])
    if problem is not None:
        raise InvalidEventError(f"customer_email {problem}")
    currency = record["currency"]
    if not (
        len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()
    ):
        raise InvalidEventError(f"currency {currency[:10]!r} is not an ISO 4217 code")
    if not record["lines"]:
        raise InvalidEventError("an order needs at least one line")
    total = 0
    for line in record["lines"]:
        sku = line["sku"]
        if len(sku) > MAX_ID_LENGTH:
            raise InvalidEventError(f"a sku is {len(sku)} characters, at most {MAX_ID_LENGTH}")
        if line["quantity"] <= 0:
            raise InvalidEventError(f"line {sku!r} has quantity {line['quantity']}")
        if line["unit_price_minor"] < 0:
            raise InvalidEventError(f"line {sku!r} has a negative price")
        total += line["quantity"] * line["unit_price_minor"]
        if total > MAX_ORDER_TOTAL_MINOR:
            raise InvalidEventError(
                f"the order's lines sum to more than {MAX_ORDER_TOTAL_MINOR} minor units"
            )
    if total != record["total_minor"]:
        raise InvalidEventError(f"total_minor {record['total_minor']} != sum of lines {total}")


_RULES: dict[str, Callable[[Record], None]] = {
    BLOG_POST_UPDATED: _blog_post_updated,
    BLOG_POST_DELETED: _blog_post_deleted,
    ORDER_FULFILLED: _order_fulfilled,
}


def validate(event_type: str, record: Record) -> None:
    """Raise :class:`InvalidEventError` when ``record`` breaks a rule of ``event_type``."""
    rule = _RULES.get(event_type)
    if rule is not None:
        try:
            _no_nul(record)
            rule(record)
        except (KeyError, TypeError) as exc:  # a field the rule needs is missing or mistyped
            raise InvalidEventError(f"{event_type}: {exc!r}") from exc
