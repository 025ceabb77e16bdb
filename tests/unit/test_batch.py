"""The batch transaction on a real database (SQLite and PostgreSQL), without a broker."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from producers import SampleEvent, blog_events, with_noise
from projections import BlogProjection, CheckpointStore, Move, make_engine
from schemas import AvroSerde, SchemaCatalog
from schemas.errors import FencedError
from tests.support.fakes import FakeMessage, ListSink
from tests.support.oracle import assert_blog_matches

TOPIC = "blog.posts"
SERDE = AvroSerde(SchemaCatalog.load())


def _messages(events: list[SampleEvent], partitions: int = 2) -> list[FakeMessage]:
    offsets = [0] * partitions
    out = []
    for ev in events:
        p = hash(ev.key) % partitions
        out.append(
            FakeMessage(
                TOPIC, p, offsets[p], SERDE.encode(ev.event_type, ev.record), ev.key.encode()
            )
        )
        offsets[p] += 1
    return out


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    for engine in _ENGINES:
        engine.dispose()
    _ENGINES.clear()


_ENGINES: list[sa.Engine] = []


def _engine(url: str) -> sa.Engine:
    _ENGINES.append(make_engine(url))
    return _ENGINES[-1]


def _processor(url: str, sink: ListSink | None = None) -> BatchProcessor:
    proc = BatchProcessor(
        engine=_engine(url),
        projection=BlogProjection(topic=TOPIC),
        serde=SERDE,
        checkpoints=CheckpointStore(),
        dead_letters=sink or ListSink(),
        stats=RunStats(),
    )
    proc.ensure_schema()
    return proc


def _run(
    proc: BatchProcessor,
    messages: list[FakeMessage],
    batch: int,
    positions: dict[tuple[str, int], int | None],
) -> None:
    for start in range(0, len(messages), batch):
        prepared = proc.prepare(messages[start : start + batch], positions)
        positions.update(proc.commit(prepared).positions)


def test_batches_fold_to_the_oracle(db_url: str) -> None:
    """Any batch size gives the oracle's posts and tag cloud, with dups and stale versions."""
    events = with_noise(
        blog_events(posts=300, seed=11), duplicate_ratio=0.1, stale_ratio=0.1, seed=4
    )
    proc = _processor(db_url)
    positions: dict[tuple[str, int], int | None] = {(TOPIC, 0): None, (TOPIC, 1): None}
    _run(proc, _messages(events), 37, positions)
    assert_blog_matches(db_url, events)
    assert proc.stats.balanced()
    assert proc.stats.stale > 0


def test_redelivery_is_skipped_by_offset(db_url: str) -> None:
    """Re-delivered messages (offset <= checkpoint) are counted and change nothing."""
    events = blog_events(posts=50, seed=2)
    msgs = _messages(events)
    proc = _processor(db_url)
    positions: dict[tuple[str, int], int | None] = {(TOPIC, 0): None, (TOPIC, 1): None}
    _run(proc, msgs, 25, positions)
    applied = proc.stats.applied
    _run(proc, msgs, 25, positions)  # the whole topic again
    assert proc.stats.applied == applied
    assert proc.stats.skipped_offset == len(msgs)
    assert_blog_matches(db_url, events)


def test_checkpoint_is_compare_and_set(db_url: str) -> None:
    """A writer whose expected offset is stale is fenced and its batch rolls back whole."""
    events = blog_events(posts=20, seed=3)
    msgs = [m for m in _messages(events, partitions=1)]
    proc = _processor(db_url)
    positions: dict[tuple[str, int], int | None] = {(TOPIC, 0): None}
    _run(proc, msgs[:10], 10, positions)
    zombie_view = {(TOPIC, 0): None}  # a zombie still believes nothing was applied
    batch = proc.prepare(msgs[10:], zombie_view)
    with pytest.raises(FencedError):
        proc.commit(batch)
    store = CheckpointStore()
    with proc.engine.connect() as conn:
        assert store.load(conn, proc.projection.slot) == {(TOPIC, 0): 9}
        posts = conn.execute(sa.text("SELECT COUNT(*) FROM posts_v1")).scalar_one()
    assert posts == len({e.key for e in events[:10]})


def test_first_checkpoint_insert_is_fenced_too(db_url: str) -> None:
    """Two writers creating the same checkpoint row: the second loses."""
    engine = _engine(db_url)
    store = CheckpointStore()
    with engine.begin() as conn:
        store.create(conn)
        store.advance(conn, "p", {("t", 0): Move(None, 5)})
    with pytest.raises(FencedError), engine.begin() as conn:
        store.advance(conn, "p", {("t", 0): Move(None, 7)})
    with engine.connect() as conn:
        assert store.load(conn, "p") == {("t", 0): 5}


def test_poison_goes_to_the_sink_and_the_rest_applies(db_url: str) -> None:
    """Undecodable messages are dead-lettered; every good event still applies once."""
    events = blog_events(posts=30, seed=9)
    msgs = _messages(events, partitions=1)
    msgs.insert(5, FakeMessage(TOPIC, 0, -1, b"garbage"))
    for i, m in enumerate(msgs):
        m._offset = i
    sink = ListSink(fail_times=1)
    proc = _processor(db_url, sink)
    positions: dict[tuple[str, int], int | None] = {(TOPIC, 0): None}
    prepared = proc.prepare(msgs, positions)
    with pytest.raises(Exception, match="injected"):
        proc.commit(prepared)
    positions.update(proc.commit(prepared).positions)
    assert [d.message.offset() for d in sink.sent] == [5]
    assert proc.stats.dead_lettered == 1
    assert proc.stats.balanced()
    assert_blog_matches(db_url, events)


def test_delete_is_terminal(sqlite_url: str) -> None:
    """A later update, even with a higher version, does not resurrect a deleted post."""
    events = blog_events(posts=1, edits_per_post=0, delete_ratio=1.0, seed=1)
    assert [e.event_type for e in events] == ["blog.BlogPostUpdated", "blog.BlogPostDeleted"]
    late = SampleEvent(
        "blog",
        "blog.BlogPostUpdated",
        events[0].key,
        {**events[0].record, "version": 99, "event_id": "00000000-0000-4000-8000-000000000001"},
    )
    proc = _processor(sqlite_url)
    positions: dict[tuple[str, int], int | None] = {(TOPIC, 0): None}
    for chunk in ([events[0]], [events[1]], [late]):
        msgs = _messages(chunk, partitions=1)
        last = positions[(TOPIC, 0)]
        for m in msgs:
            m._offset = 0 if last is None else last + 1
        positions.update(proc.commit(proc.prepare(msgs, positions)).positions)
    model = assert_blog_matches(sqlite_url, [*events, late])
    assert model.deleted == {events[0].key}
    assert model.tag_cloud == {}


def test_sqlite_stores_datetimes_in_sqlalchemy_format(sqlite_url: str) -> None:
    """The driver-level upsert writes DateTime as SQLAlchemy would, so ranges and cursors compare."""
    events = blog_events(posts=5, seed=4)
    proc = _processor(sqlite_url)
    positions: dict[tuple[str, int], int | None] = {(TOPIC, 0): None, (TOPIC, 1): None}
    _run(proc, _messages(events), 100, positions)
    with proc.engine.connect() as conn:
        raw = [r[0] for r in conn.exec_driver_sql("SELECT created_at FROM posts_v1")]
    assert raw
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", value) for value in raw), raw
