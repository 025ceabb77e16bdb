"""The events of the contract as Python sees them after decoding: their names and fields.

Event-type names are defined here once (the Avro full name: ``<namespace>.<Name>``),
as constants and as ``Literal`` types, so code that dispatches on ``event_type`` is
checked by mypy. Each record is a :class:`~typing.TypedDict`: fastavro already returns
plain dicts, so typing them costs nothing per event at run time.

Each TypedDict follows the NEWEST schema version, as decoding resolves every writer
version to it; fields added by later versions are ``NotRequired``, so a decoder that
reads with the writer's schema (an old event without the field) is type-correct too.
Logical types arrive decoded: ``uuid`` as :class:`uuid.UUID`, ``timestamp-millis`` as an
aware UTC :class:`~datetime.datetime`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, NotRequired, TypedDict
from uuid import UUID

__all__ = [
    "BLOG_POST_DELETED",
    "BLOG_POST_UPDATED",
    "EVENT_TYPES",
    "ORDER_FULFILLED",
    "BlogPostDeleted",
    "BlogPostDeletedType",
    "BlogPostUpdated",
    "BlogPostUpdatedType",
    "EventRecord",
    "OrderFulfilled",
    "OrderFulfilledType",
    "OrderLine",
]

BlogPostUpdatedType = Literal["blog.BlogPostUpdated"]
BlogPostDeletedType = Literal["blog.BlogPostDeleted"]
OrderFulfilledType = Literal["orders.OrderFulfilled"]

BLOG_POST_UPDATED: Final[BlogPostUpdatedType] = "blog.BlogPostUpdated"
BLOG_POST_DELETED: Final[BlogPostDeletedType] = "blog.BlogPostDeleted"
ORDER_FULFILLED: Final[OrderFulfilledType] = "orders.OrderFulfilled"
#: every event type of the contract
EVENT_TYPES: Final = (BLOG_POST_UPDATED, BLOG_POST_DELETED, ORDER_FULFILLED)


class BlogPostUpdated(TypedDict):
    """``blog.BlogPostUpdated`` (v2): a post was created or edited; its full state."""

    event_id: UUID
    post_id: str
    title: str
    description: str
    tags: list[str]
    author: str
    creation_date: datetime
    updated_at: datetime
    version: int
    slug: NotRequired[str | None]  # v2


class BlogPostDeleted(TypedDict):
    """``blog.BlogPostDeleted`` (v1): a post was deleted, for good."""

    event_id: UUID
    post_id: str
    deleted_at: datetime
    version: int


class OrderLine(TypedDict):
    sku: str
    quantity: int
    unit_price_minor: int


class OrderFulfilled(TypedDict):
    """``orders.OrderFulfilled`` (v1): money in integer minor units of ``currency``."""

    event_id: UUID
    order_id: str
    customer_id: str
    customer_email: str
    lines: list[OrderLine]
    total_minor: int
    currency: str
    fulfilled_at: datetime


#: the record of any event of the contract (discriminate by the event's ``event_type``)
EventRecord = BlogPostUpdated | BlogPostDeleted | OrderFulfilled
