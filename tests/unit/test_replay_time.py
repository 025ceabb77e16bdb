"""Replay by time checks the broker's answer against the records; replayed events are not
live and stay out of the live event-age histogram."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from consumers.kafka.watermarks import VERIFY_LIMIT, verify_time_offsets
from consumers.observability.metrics import Metrics
from consumers.observability.observer import LoopObserver
from consumers.runtime.batch import PreparedBatch
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.transaction import CommitResult
from projections import ApplyResult, Event
from schemas.errors import ConfigurationError

TP = ("blog.posts", 0)
#: offset -> record timestamp (ms): three batches, appended at 1000, 2000 and 3000
TIMES = {0: 1000, 1: 1001, 2: 2000, 3: 2001, 4: 2002, 5: 3000}


def _read(tp: tuple[str, int], start: int, limit: int) -> Iterator[tuple[int, int]]:
    assert tp == TP
    for offset in sorted(TIMES)[start : start + limit]:
        yield offset, TIMES[offset]


@pytest.mark.parametrize(
    ("answer", "asked", "expected"),
    [
        (2, 2000, 2),  # a right answer stands
        (0, 9_999, None),  # a future time answered with 0 (the embedded broker): the end
        (2, 2001, 3),  # answered per batch: the first record at or after the time
        (5, 3500, None),  # the last record is older than asked: the end
        (None, 9_999, None),  # the broker's own "no such record"
    ],
)
def test_the_answer_is_checked_against_record_timestamps(
    answer: int | None, asked: int, expected: int | None
) -> None:
    """An answered offset whose record is older than the time never rewinds a projection."""
    assert verify_time_offsets({TP: answer}, asked, _read) == {TP: expected}


def test_an_answer_that_cannot_be_checked_is_refused() -> None:
    """A broker off by more than VERIFY_LIMIT records: one line, no plan."""

    def old(tp: tuple[str, int], start: int, limit: int) -> Iterator[tuple[int, int]]:
        return ((start + i, 1) for i in range(limit))

    with pytest.raises(ConfigurationError, match="give offsets instead"):
        verify_time_offsets({TP: 0}, 5, old)
    assert VERIFY_LIMIT >= 1_000


def _event(offset: int, *, live: bool) -> Event:
    return Event(
        topic=TP[0],
        partition=0,
        offset=offset,
        event_type="blog.BlogPostUpdated",
        event_id=f"e{offset}",
        record={},  # type: ignore[typeddict-item]
        timestamp_ms=1_000,
        live=live,
    )


def test_replayed_events_stay_out_of_the_event_age_histogram() -> None:
    """Only live events feed projectionist_event_age_seconds; replayed ones are counted as
    received but not as late."""
    registry = CollectorRegistry()
    observer = LoopObserver(Metrics(registry), clock=lambda: 100.0)
    events = [_event(0, live=True), _event(1, live=False), _event(2, live=False)]
    batch = PreparedBatch(events=events, consumed=3)
    commit = CommitResult(batch, {TP: 2}, ApplyResult(applied=1))
    observer.committed(RunnerSnapshot(slot="blog_v1"), commit, 0.01)
    labels = {"projection": "blog_v1", "topic": TP[0]}
    assert registry.get_sample_value("projectionist_event_age_seconds_count", labels) == 1
    assert registry.get_sample_value("projectionist_event_age_seconds_sum", labels) == 99.0
    received = registry.get_sample_value(
        "projectionist_events_received_total",
        {**labels, "event_type": "blog.BlogPostUpdated"},
    )
    assert received == 3
