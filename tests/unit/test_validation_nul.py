"""The per-event NUL and control-character checks: found anywhere, reported with their path."""

from __future__ import annotations

from collections import UserDict
from datetime import UTC, datetime

import pytest

from schemas._validation import validate
from schemas.errors import InvalidEventError
from schemas.events import BLOG_POST_UPDATED, ORDER_FULFILLED

POST = {
    "event_id": "9f4fb003-9f38-45c1-b7ba-2917f4226e5b",
    "post_id": "p1",
    "title": "t",
    "description": "d",
    "tags": ["a", "b"],
    "author": "me",
    "creation_date": datetime(2026, 1, 1, tzinfo=UTC),
    "updated_at": 1767225601000,
    "version": 1,
}
ORDER = {
    "event_id": "e",
    "order_id": "o1",
    "customer_id": "c1",
    "customer_email": "c@example.com",
    "currency": "EUR",
    "lines": [{"sku": "s1", "quantity": 2, "unit_price_minor": 5}],
    "total_minor": 10,
    "fulfilled_at": 1767225601000,
}


def test_valid_records_pass() -> None:
    validate(BLOG_POST_UPDATED, POST)
    validate(ORDER_FULFILLED, ORDER)
    validate(BLOG_POST_UPDATED, UserDict(POST))  # any mapping, not only dicts


@pytest.mark.parametrize(
    ("event_type", "record", "where"),
    [
        (BLOG_POST_UPDATED, {**POST, "title": "a\x00b"}, "title contains a NUL"),
        (BLOG_POST_UPDATED, {**POST, "tags": ["a", "\x00"]}, "tags[1] contains a NUL"),
        (
            ORDER_FULFILLED,
            {**ORDER, "lines": [{"sku": "s\x00", "quantity": 2, "unit_price_minor": 5}]},
            "lines[0].sku contains a NUL",
        ),
        (BLOG_POST_UPDATED, {**POST, "post_id": "p\x1f"}, "post_id contains a control"),
        (BLOG_POST_UPDATED, {**POST, "author": "a\x85"}, "author contains a control"),
    ],
)
def test_found_anywhere_with_its_path(event_type: str, record: dict, where: str) -> None:
    with pytest.raises(InvalidEventError, match=where.replace("[", r"\[").replace("]", r"\]")):
        validate(event_type, record)


def test_no_false_alarm_on_non_control_unicode() -> None:
    validate(BLOG_POST_UPDATED, {**POST, "post_id": "pé\u00a0ü", "author": "\u2028x"})


@pytest.mark.parametrize(
    ("event_type", "record", "field"),
    [
        (BLOG_POST_UPDATED, {**POST, "updated_at": 2**62}, "updated_at"),
        (BLOG_POST_UPDATED, {**POST, "creation_date": -(2**62)}, "creation_date"),
        (ORDER_FULFILLED, {**ORDER, "fulfilled_at": 253_402_300_800_000}, "fulfilled_at"),
    ],
)
def test_timestamps_a_datetime_cannot_hold_are_invalid(
    event_type: str, record: dict, field: str
) -> None:
    """Decoded without logical types, an out-of-range time is refused by validation (with
    them fastavro's conversion refused it): poison with its reason, not a failed write."""
    with pytest.raises(InvalidEventError, match=f"{field} .* outside the years 1-9999"):
        validate(event_type, record)
