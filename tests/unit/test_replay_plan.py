"""Replay's building blocks without a broker: parsing, refusal, and what a batch re-applies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.operations.replay import PartitionPlan, ReplayRefused, check_replayable, parse_point
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from producers import blog_events
from projections import BlogProjection, CheckpointStore
from projections.generations.replay_marks import ReplayMark
from schemas import AvroSerde, SchemaCatalog
from schemas.errors import ConfigurationError
from tests.support.fakes import FakeMessage, ListSink

SERDE = AvroSerde(SchemaCatalog.load())


def test_parse_point_accepts_times_offsets_and_beginning() -> None:
    """--from takes an ISO-8601 time (naive is UTC), offsets per partition, or 'beginning'."""
    assert parse_point("2026-01-31T12:00:00Z") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_point("2026-01-31T12:00:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_point("0=120, 1=80") == {(None, 0): 120, (None, 1): 80}
    assert parse_point("blog.posts:3=5") == {("blog.posts", 3): 5}
    assert parse_point("beginning") == "beginning"
    with pytest.raises(ConfigurationError, match="expected an ISO-8601 time"):
        parse_point("last tuesday")


def test_counters_must_be_rebuilt_not_replayed() -> None:
    """A projection whose writes are not idempotent under replay is refused, naming rebuild."""

    class Counting(BlogProjection):
        idempotent_replay = False

    check_replayable(BlogProjection())
    with pytest.raises(ReplayRefused, match="projectionist rebuild blog"):
        check_replayable(Counting())


def test_plan_counts_only_events_inside_the_window() -> None:
    """Events to re-apply run from the rewind point to the checkpoint, or to --to if earlier."""
    assert PartitionPlan("t", 0, 99, 40, None, 100).events == 60
    assert PartitionPlan("t", 0, 99, 40, 70, 100).events == 30
    assert PartitionPlan("t", 0, None, 0, None, 100).events == 0


def _processor(live: bool = True) -> BatchProcessor:
    proc = BatchProcessor(
        engine=None,  # type: ignore[arg-type]  # prepare() never touches the database
        projection=BlogProjection(),
        serde=SERDE,
        checkpoints=CheckpointStore(),
        dead_letters=ListSink(),
        stats=RunStats(),
    )
    proc.live = live
    return proc


def _messages(n: int) -> list[FakeMessage]:
    events = blog_events(posts=n, edits_per_post=0, seed=3)[:n]
    return [
        FakeMessage("blog.posts", 0, i, SERDE.encode(e.event_type, e.record))
        for i, e in enumerate(events)
    ]


def test_replayed_events_are_not_live_and_the_window_skips() -> None:
    """Up to the replay mark events are re-applications (no side effects); --to passes over the rest."""
    proc = _processor()
    proc.replay_marks = {("blog.posts", 0): ReplayMark(replayed_through=5, skip_from=4)}
    batch = proc.prepare(_messages(9), {("blog.posts", 0): None})
    assert [(e.offset, e.live) for e in batch.events] == [
        (0, False),
        (1, False),
        (2, False),
        (3, False),
        (6, True),
        (7, True),
        (8, True),
    ]
    assert batch.skipped_offset == 2  # offsets 4 and 5: applied before, outside the window
    assert batch.ends == {("blog.posts", 0): 8}


def test_rebuild_marks_every_event_not_live() -> None:
    """A rebuild's processor (live=False) never lets a projection fire side effects."""
    batch = _processor(live=False).prepare(_messages(3), {("blog.posts", 0): None})
    assert [e.live for e in batch.events] == [False, False, False]
