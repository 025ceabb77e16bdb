"""The event as a projection sees it: decoded record plus where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Event"]


@dataclass(frozen=True, slots=True)
class Event:
    """One decoded event at one position of one partition."""

    topic: str
    partition: int
    offset: int
    event_type: str  # Avro full name, e.g. "blog.BlogPostUpdated"
    event_id: str
    record: dict[str, Any]
    key: bytes | None = None
    timestamp_ms: int | None = None  # broker/producer timestamp, for event age
    #: False when this event is re-applied by a rebuild or a replay: projections with
    #: side effects (``has_side_effects``) must not fire them (no e-mail sent twice)
    live: bool = True
