"""Poison inside the batch transaction: bisection, park-key mode, the audit log, data-loss checks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import sqlalchemy as sa

from consumers.runtime.history_guard import HistoryGuard, mismatch
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from producers import SampleEvent, blog_events
from projections import ApplyResult, BlogProjection, CheckpointStore, Event, make_engine
from schemas import AvroSerde, SchemaCatalog
from schemas.errors import DataLossError, InvalidEventError
from tests.support.fakes import FakeMessage, ListSink
from tests.support.oracle import assert_blog_matches

TOPIC = "blog.posts"
SERDE = AvroSerde(SchemaCatalog.load())
Positions = dict[tuple[str, int], int | None]


class PickyBlog(BlogProjection):
    """The blog projection, but its handler rejects some event ids (a domain rule in apply)."""

    def __init__(self, rejected: set[str]) -> None:
        super().__init__(topic=TOPIC)
        self.rejected = rejected
        self.calls = 0

    def apply(self, conn: sa.Connection, events: Sequence[Event]) -> ApplyResult:
        self.calls += 1
        for e in events:
            if e.event_id in self.rejected:
                raise InvalidEventError(f"handler rejects {e.event_id}")
        return super().apply(conn, events)


_ENGINES: list[sa.Engine] = []


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    for engine in _ENGINES:
        engine.dispose()
    _ENGINES.clear()


def _processor(
    url: str, projection: BlogProjection, sink: ListSink, *, mode: str = "skip"
) -> BatchProcessor:
    _ENGINES.append(make_engine(url))
    proc = BatchProcessor(
        engine=_ENGINES[-1],
        projection=projection,
        serde=SERDE,
        checkpoints=CheckpointStore(),
        dead_letters=sink,
        stats=RunStats(),
        dead_letter_mode=mode,
        applied_log=True,
    )
    proc.ensure_schema()
    return proc


def _messages(items: list[SampleEvent | bytes]) -> list[FakeMessage]:
    """One partition; ``bytes`` items are corrupt payloads keyed like the post before them."""
    out: list[FakeMessage] = []
    key = b"post-x"
    for offset, item in enumerate(items):
        if isinstance(item, bytes):
            out.append(FakeMessage(TOPIC, 0, offset, item, key))
        else:
            key = item.key.encode()
            value = SERDE.encode(item.event_type, item.record)
            headers: list[tuple[str, bytes | None]] = [
                ("event_id", item.record["event_id"].encode())
            ]
            out.append(FakeMessage(TOPIC, 0, offset, value, key, headers))
    return out


def _run(proc: BatchProcessor, msgs: list[FakeMessage], batch: int, positions: Positions) -> None:
    for start in range(0, len(msgs), batch):
        prepared = proc.prepare(msgs[start : start + batch], positions)
        positions.update(proc.commit(prepared).positions)


def _audit(url: str) -> list[tuple[int, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text('SELECT "offset", outcome FROM applied_event_log ORDER BY seq')
            )
            return [(r[0], r[1]) for r in rows]
    finally:
        engine.dispose()


def test_rejected_events_are_isolated_and_the_rest_applies_once(db_url: str) -> None:
    """apply() rejecting an event: bisection dead-letters exactly it; the rest applies once."""
    events = blog_events(posts=60, seed=31)
    bad = {events[7].record["event_id"], events[40].record["event_id"]}
    sink = ListSink()
    proc = _processor(db_url, PickyBlog(bad), sink)
    positions: Positions = {(TOPIC, 0): None}
    msgs = _messages(list(events))
    _run(proc, msgs, 64, positions)
    assert sorted(d.message.offset() for d in sink.sent) == [7, 40]
    assert {type(d.error).__name__ for d in sink.sent} == {"InvalidEventError"}
    good = [e for e in events if e.record["event_id"] not in bad]
    assert_blog_matches(db_url, good)
    assert proc.stats.balanced()
    assert proc.stats.dead_lettered == 2
    assert proc.stats.applied + proc.stats.stale == len(good)
    audit = _audit(db_url)
    assert [o for o, _ in audit] == sorted({o for o, _ in audit}), "an offset logged twice"
    assert len(audit) == len(events)


def test_park_key_parks_later_events_of_the_key_across_batches_and_restarts(db_url: str) -> None:
    """park-key: after a dead letter, the key's later events park, even after a restart."""
    events = blog_events(posts=5, edits_per_post=4, delete_ratio=0, seed=3)
    victim = events[0].key
    first = next(i for i, e in enumerate(events) if e.key == victim)
    items: list[SampleEvent | bytes] = list(events)
    items.insert(first + 1, b"\x00corrupt")  # keyed like the victim post (see _messages)
    msgs = _messages(items)
    sink = ListSink()
    positions: Positions = {(TOPIC, 0): None}
    proc = _processor(db_url, BlogProjection(topic=TOPIC), sink, mode="park-key")
    half = len(msgs) // 2
    _run(proc, msgs[:half], 4, positions)
    # restart: a new processor reads the parked key from the database
    proc2 = _processor(db_url, BlogProjection(topic=TOPIC), sink, mode="park-key")
    _run(proc2, msgs[half:], 4, positions)
    victim_offsets = [m.offset() for m in msgs if m.key() == victim.encode()]
    parked = [d for d in sink.sent if d.reason == "parked"]
    assert [d.message.offset() for d in parked] == [o for o in victim_offsets if o > first + 1]
    assert all(d.message.key() == victim.encode() for d in parked)
    expected = [e for i, e in enumerate(events) if e.key != victim or i <= first]
    assert_blog_matches(db_url, expected)
    assert proc.stats.balanced()
    assert proc2.stats.balanced()
    assert proc.stats.parked + proc2.stats.parked == len(parked) > 0


def test_skip_mode_goes_on_with_the_key(sqlite_url: str) -> None:
    """skip mode: only the poison itself is dead-lettered; later events of its key apply."""
    events = blog_events(posts=3, edits_per_post=3, delete_ratio=0, seed=5)
    items: list[SampleEvent | bytes] = list(events)
    items.insert(1, b"garbage")
    sink = ListSink()
    proc = _processor(sqlite_url, BlogProjection(topic=TOPIC), sink)
    _run(proc, _messages(items), 3, {(TOPIC, 0): None})
    assert [d.reason for d in sink.sent] == ["poison"]
    assert_blog_matches(sqlite_url, events)


def test_checkpoint_ahead_of_high_watermark_is_data_loss() -> None:
    """A checkpoint past the log's end, or before its start, is reported once it persists."""
    assert mismatch(99, 0, 100) is None
    assert mismatch(None, 0, 5) is None
    assert mismatch(5, 0, -1001) is None  # no fetch response yet
    assert "stored checkpoint is 150" in (mismatch(150, 0, 100) or "")
    assert "starts at offset 50" in (mismatch(10, 50, 100) or "")
    guard = HistoryGuard("blog_v1", grace_s=0.0)
    with pytest.raises(DataLossError, match=r"t\[0\].*rebuild"):
        guard.check({("t", 0): 150}, lambda _tp: (0, 100))
    patient = HistoryGuard("blog_v1", grace_s=60.0)
    patient.check({("t", 0): 150}, lambda _tp: (0, 100))  # a stale cache gets time to refresh
    assert patient.suspects(("t", 0))
    patient.check({("t", 0): 150}, lambda _tp: (0, 200))
    assert not patient.suspects(("t", 0))
