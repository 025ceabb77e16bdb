"""Counters of one runner, for the summary line, ``status`` and the metrics exporter.

Every consumed message lands in exactly one bucket, so the books always balance::

    consumed == applied + skipped_offset + skipped_event_id + stale + ignored + dead_lettered
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["RunStats"]


@dataclass(slots=True)
class RunStats:
    consumed: int = 0
    applied: int = 0
    skipped_offset: int = 0  # redelivered: offset at or below the stored checkpoint
    skipped_event_id: int = 0  # duplicate event id at a new offset
    stale: int = 0  # version guard: an older or equal version than stored
    ignored: int = 0  # event types this projection does not read
    dead_lettered: int = 0
    parked: int = 0  # dead-lettered because an earlier event of the key was (park-key)
    #: of dead_lettered: refused for good by the broker (kept in the database instead)
    dead_letters_refused: int = 0
    #: dead letters not sent again: an earlier generation or run sent them already
    dead_letters_known: int = 0
    batches: int = 0
    retries: int = 0
    fenced: int = 0
    rebalances: int = 0
    started_at: float = 0.0
    last_applied_at: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates_skipped(self) -> int:
        return self.skipped_offset + self.skipped_event_id

    def balanced(self) -> bool:
        return self.consumed == (
            self.applied
            + self.skipped_offset
            + self.skipped_event_id
            + self.stale
            + self.ignored
            + self.dead_lettered
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
