"""Replaying dead letters back through their projection, exactly once.

One transaction: claim each selected dead letter's original ``(topic, partition,
offset)`` in ``dlq_replays`` (already claimed: skipped), filter known event ids when
the projection keeps a ledger, apply — events the projection still rejects are found
by bisection, left out and unclaimed — and unpark every key whose parked dead letters
have all been replayed. Checkpoints are not touched: the consumer is long past these
offsets.

Replay does not coordinate with running consumers of a ``park-key`` projection: a
consumer may park one more event of a key while its replay unparks it. Replay parked
keys while the projection's consumers are stopped, or replay again afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from consumers.kafka.dead_letters import DeadLetterRecord
from consumers.runtime.poison import find_rejected
from projections import Event, EventLedger, Projection, database_errors
from projections.progress.dead_letter_log import DeadLetterLog
from projections.progress.dlq_replays import ReplayLedger
from projections.progress.parked_keys import ParkedKeys, key_text
from schemas import AvroSerde
from schemas.errors import PoisonError

__all__ = ["KeyRelease", "ReplayResult", "release_key", "replay_dead_letters"]

Origin = tuple[str, int, int]


@dataclass
class ReplayResult:
    selected: int = 0
    replayed: int = 0  # applied now (or found to be a known event id)
    already: int = 0  # replayed before: nothing done
    still_poison: dict[str, int] = field(default_factory=dict)  # error class -> count
    unparked: int = 0


def replay_dead_letters(
    engine: Engine,
    projection: Projection,
    serde: AvroSerde,
    records: Sequence[DeadLetterRecord],
    *,
    dead_letter_topic: Sequence[DeadLetterRecord] | None = None,
    dedup_by_event_id: bool = False,
) -> ReplayResult:
    """Apply ``records`` (deduplicated by origin) to ``projection``; see the module doc.

    ``dead_letter_topic`` is everything the topic holds (default: ``records``). A parked
    key with a selected dead letter is unparked once every ``parked`` dead letter of it
    there has been replayed (its poison itself may stay unreplayable).
    """
    unique: dict[Origin, DeadLetterRecord] = {}
    for rec in sorted(records, key=lambda r: r.origin):
        unique.setdefault(rec.origin, rec)
    result = ReplayResult(selected=len(unique))
    events: list[Event] = []
    for origin, rec in unique.items():
        try:
            decoded = serde.decode(rec.value)
        except PoisonError as exc:
            name = type(exc).__name__
            result.still_poison[name] = result.still_poison.get(name, 0) + 1
            continue
        events.append(
            Event(
                topic=origin[0],
                partition=origin[1],
                offset=origin[2],
                event_type=decoded.event_type,
                event_id=str(decoded.record.get("event_id", "")),
                record=decoded.record,
                key=rec.key,
            )
        )
    replays, parking = ReplayLedger(), ParkedKeys()
    ledger = EventLedger() if dedup_by_event_id or projection.needs_event_dedup else None
    slot = projection.slot
    with database_errors(), engine.begin() as conn:
        for table in (replays, parking, ledger):
            if table is not None:
                table.create(conn)
        projection.create_tables(conn)
        new = replays.claim(conn, slot, [(e.topic, e.partition, e.offset) for e in events])
        result.already = len(events) - len(new)
        fresh = [e for e in events if (e.topic, e.partition, e.offset) in new]
        to_apply = ledger.first_seen(conn, slot, fresh) if ledger is not None else fresh
        rejected = find_rejected(conn, projection, to_apply)
        for _event, error in rejected:
            kind = type(error).__name__
            result.still_poison[kind] = result.still_poison.get(kind, 0) + 1
        replays.release(conn, slot, [(e.topic, e.partition, e.offset) for e, _ in rejected])
        result.replayed = len(fresh) - len(rejected)
        everything = dead_letter_topic if dead_letter_topic is not None else records
        touched = {(rec.origin[:2], key_text(rec.key)) for rec in unique.values()}
        for tp, key, first in parking.all(conn, slot):
            if (tp, key) not in touched:
                continue
            parked = {
                rec.origin
                for rec in everything
                if rec.reason == "parked"
                and rec.origin[:2] == tp
                and key_text(rec.key) == key
                and rec.origin[2] > first
            }
            if replays.replayed(conn, slot, sorted(parked)) == parked:
                result.unparked += parking.unpark(conn, slot, tp, key)
    return result


@dataclass
class KeyRelease:
    unparked: int = 0  # partitions on which the key was parked
    skipped: int = 0  # dead letters of the key marked as never to be replayed


def release_key(engine: Engine, projection: Projection, key: bytes, *, skip: bool) -> KeyRelease:
    """``dlq unpark`` / ``dlq skip``: unpark ``key`` on every partition of ``projection``.

    With ``skip`` its dead letters (as ``dead_letter_log`` knows them) are also claimed
    in ``dlq_replays``, so no later ``dlq replay`` applies them: the operator gave up on
    them. Without it they stay replayable. One transaction.
    """
    replays, parking, log = ReplayLedger(), ParkedKeys(), DeadLetterLog()
    slot, hex_key = projection.slot, key_text(key)
    out = KeyRelease()
    with database_errors(), engine.begin() as conn:
        for table in (replays, parking, log):
            table.create(conn)
        for tp, parked, _first in parking.all(conn, slot):
            if parked == hex_key:
                out.unparked += parking.unpark(conn, slot, tp, parked)
        if skip:
            origins = [letter.origin for letter in log.letters(conn, projection.name, key=key)]
            out.skipped = len(replays.claim(conn, slot, origins))
    return out
