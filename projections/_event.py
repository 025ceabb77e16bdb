"""The event as a projection sees it: decoded record plus where it came from.

An :class:`Event` carries its own position (topic, partition, offset: the tracking a
projection's batch commits with) and its record, typed after the newest schema of its
event type (:mod:`schemas.events`). A projection that reads several event types
dispatches on ``event_type``; through :func:`known_events` mypy narrows each event's
``record`` to its TypedDict by that comparison (tagged-union views, no run-time cost).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol, cast

from schemas.events import (
    BlogPostDeleted,
    BlogPostDeletedType,
    BlogPostUpdated,
    BlogPostUpdatedType,
    EventRecord,
    OrderFulfilled,
    OrderFulfilledType,
)

__all__ = [
    "BlogPostDeletedEvent",
    "BlogPostUpdatedEvent",
    "Event",
    "KnownEvent",
    "OrderFulfilledEvent",
    "known_events",
]


class Event(NamedTuple):
    """One decoded event at one position of one partition.

    A named tuple, not a frozen dataclass: one is built per message on the hot path, and
    a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``.
    Immutable either way; ``event._replace(live=False)`` gives a changed copy.
    """

    topic: str
    partition: int
    offset: int
    event_type: str  # Avro full name, e.g. "blog.BlogPostUpdated" (schemas.events)
    event_id: str
    record: EventRecord
    key: bytes | None = None
    timestamp_ms: int | None = None  # broker/producer timestamp, for event age
    #: False when this event is re-applied by a rebuild or a replay: projections with
    #: side effects (``has_side_effects``) must not fire them (no e-mail sent twice)
    live: bool = True

    @property
    def data(self) -> Mapping[str, Any]:
        """The record as a plain mapping: for event types of your own schemas, which the
        shipped contract's TypedDicts (``record``) do not describe."""
        return self.record


class _Position(Protocol):
    """What every event view shares with :class:`Event`."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def timestamp_ms(self) -> int | None: ...
    @property
    def live(self) -> bool: ...


class BlogPostUpdatedEvent(_Position, Protocol):
    @property
    def event_type(self) -> BlogPostUpdatedType: ...
    @property
    def record(self) -> BlogPostUpdated: ...


class BlogPostDeletedEvent(_Position, Protocol):
    @property
    def event_type(self) -> BlogPostDeletedType: ...
    @property
    def record(self) -> BlogPostDeleted: ...


class OrderFulfilledEvent(_Position, Protocol):
    @property
    def event_type(self) -> OrderFulfilledType: ...
    @property
    def record(self) -> OrderFulfilled: ...


#: an event of the contract, discriminated by ``event_type`` (events of types the
#: contract does not know may arrive too: they match no comparison and are ignored)
KnownEvent = BlogPostUpdatedEvent | BlogPostDeletedEvent | OrderFulfilledEvent


def known_events(events: Sequence[Event]) -> Sequence[KnownEvent]:
    """``events`` as the tagged union, for ``event_type`` dispatch (one call per batch)."""
    return cast("Sequence[KnownEvent]", events)
