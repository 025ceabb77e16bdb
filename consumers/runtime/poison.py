"""Sorting poison out of a batch: bisecting a rejected apply, and parking keys.

Decoding catches most poison before the transaction. A projection may still reject an
event inside ``apply`` (:class:`PoisonError`): the whole transaction rolls back, and
:func:`find_rejected` bisects the batch in a throw-away transaction, with savepoints,
to name the bad events. The caller dead-letters those and commits the rest, so every
good event of the batch is applied exactly once.

In ``park-key`` mode :func:`park_followers` also dead-letters (reason ``parked``)
every event whose key already has a dead letter at an earlier offset of the same
partition — in this batch or parked in the database by an earlier one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from sqlalchemy import Connection

from consumers.kafka.dead_letters import DeadLetter
from consumers.runtime.batch import PreparedBatch
from projections import Event, Projection, TopicPartition, database_errors
from projections.progress.parked_keys import key_text
from schemas.errors import PoisonError

__all__ = ["KeyParked", "find_rejected", "park_followers"]


class KeyParked(PoisonError):
    """An earlier event of this key on this partition was dead-lettered (park-key mode)."""


def find_rejected(
    conn: Connection, projection: Projection, events: Sequence[Event]
) -> list[tuple[Event, PoisonError]]:
    """The events ``apply`` rejects, found by bisection in the caller's transaction.

    Halves are applied in order, each in a savepoint: a half that applies stays applied,
    so the second half sees the state the real commit will give it. The caller rolls
    the transaction back afterwards. Cost: O(bad · log n) applies.
    """
    savepoint = conn.begin_nested()
    try:
        with database_errors():  # a value the database refuses is poison (RejectedByDatabase)
            projection.apply(conn, events)
    except PoisonError as exc:
        savepoint.rollback()
        if len(events) == 1:
            return [(events[0], exc)]
        mid = len(events) // 2
        return [
            *find_rejected(conn, projection, events[:mid]),
            *find_rejected(conn, projection, events[mid:]),
        ]
    savepoint.commit()
    return []


def park_followers(
    batch: PreparedBatch, projection: str, parked: Mapping[TopicPartition, set[str]]
) -> PreparedBatch:
    """``batch`` with the events of parked keys moved from its events to its dead letters.

    ``parked`` holds the keys parked in the database (all their new events park); a
    dead letter of this batch parks later offsets of its key.
    """
    first_bad: dict[tuple[TopicPartition, str], int] = {}
    for tp, keys in parked.items():
        for parked_key in keys:
            first_bad[(tp, parked_key)] = -1
    for letter in batch.dead_letters:
        msg = letter.message
        letter_key = key_text(msg.key())
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if letter_key is None or topic is None or partition is None or offset is None:
            continue
        slot = ((topic, partition), letter_key)
        first_bad[slot] = min(first_bad.get(slot, offset), offset)
    if not first_bad:
        return batch
    keep: list[Event] = []
    parked_letters: list[DeadLetter] = []
    now_ms = int(time.time() * 1000)
    for event in batch.events:
        key = key_text(event.key)
        since = None if key is None else first_bad.get(((event.topic, event.partition), key))
        if since is None or event.offset < since:
            keep.append(event)
            continue
        origin = "an earlier batch" if since < 0 else f"offset {since}"
        parked_letters.append(
            DeadLetter(
                batch.messages[(event.topic, event.partition, event.offset)],
                projection,
                KeyParked(f"key parked since {origin}; replay its dead letters to unpark"),
                now_ms,
                reason="parked",
            )
        )
    if not parked_letters:
        return batch
    return replace(batch, events=keep, dead_letters=[*batch.dead_letters, *parked_letters])
