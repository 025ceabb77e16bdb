"""Replaying dead letters into a projection: exactly once, still-poison reported, keys unparked."""

from __future__ import annotations

import sqlalchemy as sa

from consumers.kafka.dead_letters import DeadLetterRecord
from consumers.operations.dead_letters import replay_dead_letters
from producers import blog_events
from projections import BlogProjection, make_engine
from projections.progress.parked_keys import ParkedKeys, key_text
from schemas import AvroSerde, SchemaCatalog
from tests.support.oracle import assert_blog_matches

SERDE = AvroSerde(SchemaCatalog.load())
TOPIC = "blog.posts"


def _record(offset: int, key: str, value: bytes, reason: str) -> DeadLetterRecord:
    return DeadLetterRecord(
        topic=TOPIC + ".dlq",
        partition=0,
        offset=offset,
        key=key.encode(),
        value=value,
        dlq={
            "original.topic": TOPIC,
            "original.partition": "0",
            "original.offset": str(100 + offset),
            "reason": reason,
            "error.class": "KeyParked" if reason == "parked" else "UndecodableError",
        },
    )


def test_replay_applies_once_and_unparks_the_key(db_url: str) -> None:
    """Parked events replay once; a second replay does nothing; the key is unparked."""
    events = blog_events(posts=1, edits_per_post=3, delete_ratio=0, seed=2)
    key = events[0].key
    records = [_record(0, key, b"garbage", "poison")]
    records += [
        _record(i + 1, key, SERDE.encode(e.event_type, e.record), "parked")
        for i, e in enumerate(events)
    ]
    records.append(records[-1])  # a copy sent twice by a crash: counted once
    engine = make_engine(db_url)
    projection = BlogProjection(topic=TOPIC)
    try:
        with engine.begin() as conn:
            parking = ParkedKeys()
            parking.create(conn)
            parking.park(
                conn, projection.slot, [((TOPIC, 0), key_text(key.encode()) or "", 100, "X")]
            )
        first = replay_dead_letters(engine, projection, SERDE, records)
        assert (first.selected, first.replayed, first.already) == (len(events) + 1, len(events), 0)
        assert first.still_poison == {"UndecodableError": 1}
        assert first.unparked == 1
        assert_blog_matches(db_url, events)
        again = replay_dead_letters(engine, projection, SERDE, records)
        assert (again.replayed, again.already, again.unparked) == (0, len(events), 0)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM parked_keys")).scalar_one() == 0
    finally:
        engine.dispose()
