"""Batch preparation: one poll's messages sorted into events to apply and poison to dead-letter.

No Kafka client here: messages arrive through :class:`MessageLike`, so unit tests
drive this with plain objects. The result is a frozen :class:`PreparedBatch` that
carries its own tracking (eventsourcing's ``Tracking``): each event names its topic,
partition and offset, and ``moves`` says where each partition's checkpoint goes when
the batch commits (from the last applied offset the caller knew when it prepared the
batch). Later stages return new batches (``dataclasses.replace``) instead of editing one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from consumers.kafka.dead_letters import DeadLetter
from consumers.kafka.message import MessageLike
from projections import Event, Move, TopicPartition
from schemas import AvroSerde
from schemas.errors import PoisonError

__all__ = ["BatchPreparer", "Position", "PreparedBatch", "position_of"]

#: ``(topic, partition, offset)`` of one message
Position = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """Messages of one poll, sorted into what to apply and what to dead-letter."""

    events: Sequence[Event] = ()
    dead_letters: Sequence[DeadLetter] = ()
    #: the message behind each event, for dead-lettering it with its original bytes
    messages: Mapping[Position, MessageLike] = field(default_factory=dict)
    #: per partition, the checkpoint's compare-and-set on commit: last applied → highest seen
    moves: Mapping[TopicPartition, Move] = field(default_factory=dict)
    consumed: int = 0
    skipped_offset: int = 0

    @property
    def ends(self) -> dict[TopicPartition, int]:
        """The highest offset of each partition in this batch: its checkpoint after commit."""
        return {tp: move.new for tp, move in self.moves.items()}

    def without_partitions(self, revoked: set[TopicPartition]) -> PreparedBatch:
        """This batch without what belongs to partitions the consumer no longer owns."""
        return replace(
            self,
            events=[e for e in self.events if (e.topic, e.partition) not in revoked],
            dead_letters=[
                d
                for d in self.dead_letters
                if (d.message.topic(), d.message.partition()) not in revoked
            ],
            moves={tp: m for tp, m in self.moves.items() if tp not in revoked},
        )

    def __bool__(self) -> bool:
        return self.consumed > 0


class _ByPosition(Mapping[Position, MessageLike]):
    """The message behind each event by its position, built on first use.

    Only dead-lettering an event the database refused reads it: a dict filled per
    message on the hot path would mostly go unread."""

    __slots__ = ("_events", "_map", "_sources")

    def __init__(self, events: Sequence[Event], sources: Sequence[MessageLike]) -> None:
        self._events, self._sources = events, sources
        self._map: dict[Position, MessageLike] | None = None

    def _built(self) -> dict[Position, MessageLike]:
        if self._map is None:
            self._map = {
                (e.topic, e.partition, e.offset): m
                for e, m in zip(self._events, self._sources, strict=True)
            }
        return self._map

    def __getitem__(self, position: Position) -> MessageLike:
        return self._built()[position]

    def __iter__(self) -> Iterator[Position]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._sources)


def position_of(letter: DeadLetter) -> Position:
    msg = letter.message
    return (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)


class BatchPreparer:
    """Filter redeliveries, decode, and sort poison out (the hot path: one pass per poll)."""

    def __init__(self, *, serde: AvroSerde, projection: str, live: bool = True) -> None:
        self.serde = serde
        self.projection = projection
        #: False in a rebuild: every event is a re-application (``Event.live``)
        self.live = live

    def prepare(
        self, messages: Sequence[MessageLike], positions: Mapping[TopicPartition, int | None]
    ) -> PreparedBatch:
        """Sort messages; ``positions`` is the last applied offset of each owned partition."""
        events: list[Event] = []
        dead_letters: list[DeadLetter] = []
        sources: list[MessageLike] = []  # the message of each event, in order
        ends: dict[TopicPartition, int] = {}
        consumed = skipped = 0
        live = self.live
        decode = self.serde.decode
        new_event = tuple.__new__
        for msg in messages:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                continue
            tp = (topic, partition)
            if tp not in positions:
                continue  # revoked while the message was in flight; its new owner has it
            consumed += 1
            last = positions[tp]
            if last is not None and offset <= last:
                skipped += 1
                continue
            if offset > ends.get(tp, -1):
                ends[tp] = offset
            try:
                decoded = decode(msg.value())
            except PoisonError as exc:
                dead_letters.append(DeadLetter(msg, self.projection, exc, int(time.time() * 1000)))
                continue
            ts_type, ts = msg.timestamp()
            record = decoded[2]
            event_id: Any = record.get("event_id", "")  # a str without logical types
            sources.append(msg)
            # tuple.__new__, not Event(...): no Python-level __new__ per event
            events.append(
                new_event(
                    Event,
                    (
                        topic,
                        partition,
                        offset,
                        decoded[0],  # event_type
                        event_id if type(event_id) is str else str(event_id),
                        record,
                        msg.key(),
                        ts if ts_type else None,
                        live,
                    ),
                )
            )
        return PreparedBatch(
            events=events,
            dead_letters=dead_letters,
            messages=_ByPosition(events, sources),
            moves={tp: Move(positions[tp], end) for tp, end in ends.items()},
            consumed=consumed,
            skipped_offset=skipped,
        )
