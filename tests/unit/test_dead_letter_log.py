"""Dead letters reach the dead-letter topic once per origin, and a refused one never blocks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from consumers.kafka.dead_letters import check_dead_letter_topics, dead_letter_topic
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from consumers.testing import Given, feed
from producers import blog_events
from projections import BlogProjection, CheckpointStore, make_engine
from projections.progress.dead_letter_log import HEAD_BYTES, DeadLetterLog
from schemas.errors import ConfigurationError
from schemas.events import BLOG_POST_UPDATED
from tests.support.fakes import FakeMessage, ListSink
from tests.support.folding import SERDE
from tests.support.oracle import assert_blog_matches
from tests.support.processes import TEST_ENV, run_cli

TOPIC = "blog.posts"
EVENTS = blog_events(posts=40, seed=17)
HUGE = b"\xff" + bytes(range(256)) * 40  # poison too large for the (fake) dead-letter topic


def _messages() -> list[FakeMessage]:
    """The sample events on two partitions with poison between them, one of it huge."""
    out: list[FakeMessage] = []
    offsets = [0, 0]
    for i, ev in enumerate(EVENTS):
        p = i % 2
        if i % 9 == 4:
            value = HUGE if i == 13 else b"garbage-%d" % i
            out.append(FakeMessage(TOPIC, p, offsets[p], value, f"bad-{i}".encode()))
            offsets[p] += 1
        value = SERDE.encode(ev.event_type, ev.record)
        out.append(FakeMessage(TOPIC, p, offsets[p], value, ev.key.encode()))
        offsets[p] += 1
    return out


def _run(url: str, generation: int, sink: ListSink, *, batch: int = 7) -> RunStats:
    """Every message through a fresh processor of ``generation``, from offset 0."""
    stats = RunStats()
    processor = BatchProcessor(
        engine=make_engine(url),
        projection=BlogProjection(topic=TOPIC, generation=generation),
        serde=SERDE,
        checkpoints=CheckpointStore(),
        dead_letters=sink,
        stats=stats,
    )
    try:
        processor.ensure_schema()
        positions: dict[tuple[str, int], int | None] = {(TOPIC, 0): None, (TOPIC, 1): None}
        messages = _messages()
        for start in range(0, len(messages), batch):
            prepared = processor.prepare(messages[start : start + batch], positions)
            positions.update(processor.commit(prepared).positions)
        assert positions == {
            (TOPIC, p): max(m.offset() for m in messages if m.partition() == p) for p in (0, 1)
        }, "every partition must be committed to its end (a refused letter never blocks)"
    finally:
        processor.close()
    return stats


def test_poison_reaches_the_topic_once_across_rebuild_and_replay(db_url: str) -> None:
    """Generation 1 sends each poison once (the huge one is refused and kept in the
    database); a rebuild (generation 2) and a replay of generation 1 send nothing again,
    the log keeps one row per origin, and both generations equal the oracle."""
    poison = {
        (m.topic(), m.partition(), m.offset())
        for m in _messages()
        if (m.key() or b"").startswith(b"bad-")
    }
    first = ListSink(max_bytes=1_000)
    stats = _run(db_url, 1, first)
    assert stats.dead_lettered == len(poison)
    assert stats.dead_letters_refused == 1
    sent = [(d.message.topic(), d.message.partition(), d.message.offset()) for d in first.sent]
    assert sorted(sent) == sorted(poison - {o for o in poison if _value_at(o) == HUGE})

    rebuild, replay = ListSink(max_bytes=1_000), ListSink(max_bytes=1_000)
    assert _run(db_url, 2, rebuild, batch=50).dead_letters_known == len(poison)
    _rewind(db_url, "blog_v1")  # what `replay` does: checkpoints back to the start
    assert _run(db_url, 1, replay, batch=3).dead_letters_known == len(poison)
    assert rebuild.sent == []
    assert replay.sent == []
    assert_blog_matches(db_url, EVENTS, generation=1)
    assert_blog_matches(db_url, EVENTS, generation=2)

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            log = DeadLetterLog()
            letters = log.letters(conn, "blog")
            assert log.counts(conn, "blog") == (len(poison), 1)
            rows = conn.execute(sa.text("SELECT COUNT(*) FROM dead_letter_log")).scalar_one()
    finally:
        engine.dispose()
    assert rows == len(poison)
    assert {letter.origin for letter in letters} == poison
    (refused,) = [letter for letter in letters if letter.refused is not None]
    assert refused.refused is not None
    assert "MSG_SIZE_TOO_LARGE" in refused.refused
    assert refused.value_size == len(HUGE)
    assert refused.value_sha256 == hashlib.sha256(HUGE).hexdigest()
    assert refused.value_head == HUGE[:HEAD_BYTES]
    assert refused.key == b"bad-13"
    assert refused.error_class
    assert refused.reason == "poison"
    assert all(
        letter.refused is None and letter.value_size is None
        for letter in letters
        if letter is not refused
    )


def _rewind(url: str, slot: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            CheckpointStore().reset(conn, slot, {(TOPIC, 0): None, (TOPIC, 1): None})
    finally:
        engine.dispose()


def _value_at(origin: tuple[str, int, int]) -> bytes | None:
    for m in _messages():
        if (m.topic(), m.partition(), m.offset()) == origin:
            return m.value()
    raise AssertionError(origin)


def test_each_projection_has_its_own_dead_letter_topic() -> None:
    """Two projections of one topic never share a dead-letter topic."""
    orders = dead_letter_topic("orders.orders", "orders", ".dlq")
    notifications = dead_letter_topic("orders.orders", "notifications", ".dlq")
    assert (orders, notifications) == (
        "orders.orders.orders.dlq",
        "orders.orders.notifications.dlq",
    )


@pytest.mark.parametrize(
    ("topics", "suffix", "message"),
    [
        ({"blog": ["blog.posts"]}, "", "must not be empty"),
        (
            {"blog": ["blog.posts"], "mirror": ["blog.posts.blog.dlq"]},
            ".dlq",
            "'blog.posts.blog.dlq' of projection 'blog' is also a source topic",
        ),
    ],
)
def test_a_dead_letter_topic_that_is_a_source_is_refused(
    topics: dict[str, list[str]], suffix: str, message: str
) -> None:
    """Dead letters written back into a consumed topic would multiply: a config error."""
    with pytest.raises(ConfigurationError, match=message):
        check_dead_letter_topics(topics, suffix)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROJECTIONIST_DLQ_SUFFIX": ""}, "dlq_suffix: Value error, must not be empty"),
        (
            {
                "PROJECTIONIST_DLQ_SUFFIX": ".x",
                "PROJECTIONIST_BLOG_TOPIC": "orders.orders.orders.x",
            },
            "dead-letter topic 'orders.orders.orders.x' of projection 'orders' is also a source",
        ),
    ],
)
def test_the_cli_refuses_a_dead_letter_topic_that_is_a_source(
    env: dict[str, str], message: str
) -> None:
    """`consume` with such settings ends with exit 2 and one line, before touching the broker."""
    done = run_cli(
        ["consume", "blog", "--drain", "-b", "127.0.0.1:9"], env={**TEST_ENV, **env}, timeout_s=60
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_test_kit_reports_dead_letters_of_a_rebuild_too(tmp_path: Path) -> None:
    """`feed` of a second generation on the same database lists the same dead letters,
    though none is sent again."""
    events = [Given(e.event_type, e.record, e.key) for e in EVENTS[:10]] + [
        Given(BLOG_POST_UPDATED, {"post_id": "x"})
    ]
    url = f"sqlite:///{tmp_path}/kit.db"
    with pytest.raises(ValueError, match="does not fit its schema"):
        feed(BlogProjection(), events, database_url=url)
    bad = dict(EVENTS[0].record, version=0)  # schema-valid, refused by the domain rules
    events[-1] = Given(BLOG_POST_UPDATED, bad, EVENTS[0].key)
    live = feed(BlogProjection(), events, database_url=url)
    rebuilt = feed(BlogProjection(generation=2), events, database_url=url)
    assert live.dead_letters == rebuilt.dead_letters
    assert [index for index, _ in live.dead_letters] == [10]
    assert live.tables == rebuilt.tables
