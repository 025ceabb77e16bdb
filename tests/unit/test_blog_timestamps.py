"""The blog's timestamps are stored exactly, at both ends of the range a datetime holds.

On PostgreSQL they travel to the merge as int microseconds and become ``timestamptz``
in SQL (projections.blog._timestamptz); on SQLite through ``from_millis``. Both must
give back the instant the event carried, to the millisecond of the Avro value (and to
the microsecond of a datetime handed to ``apply`` directly).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from consumers.testing import Given, feed
from projections import BlogProjection, Event, make_engine
from schemas.events import BLOG_POST_DELETED, BLOG_POST_UPDATED
from schemas.utc import as_utc

INSTANTS = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),  # negative milliseconds
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 45, 53, 123_000, tzinfo=UTC),
    datetime(2100, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),  # past from_millis' float fast path
    datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
]


def _update(n: int, created: datetime, updated: datetime) -> dict[str, Any]:
    return {
        "event_id": f"00000000-0000-4000-8000-{n:012x}",
        "post_id": f"post-{n}",
        "title": "t",
        "description": "d",
        "tags": ["a"],
        "author": "x",
        "creation_date": created,
        "updated_at": updated,
        "version": 1,
    }


def test_timestamps_survive_the_write_exactly(db_url: str) -> None:
    """Every instant as created_at, as updated_at and as a tombstone's deleted_at."""
    events = []
    for n, when in enumerate(INSTANTS):
        other = INSTANTS[-1 - n]
        events.append(Given(BLOG_POST_UPDATED, _update(n, when, other), f"post-{n}"))
        deleted = 100 + n
        events.append(Given(BLOG_POST_UPDATED, _update(deleted, other, when), f"post-{deleted}"))
        delete = {
            "event_id": f"00000000-0000-4000-9000-{n:012x}",
            "post_id": f"post-{deleted}",
            "version": 2,
            "deleted_at": when,
        }
        events.append(Given(BLOG_POST_DELETED, delete, f"post-{deleted}"))
    fed = feed(BlogProjection(), events, database_url=db_url, batch_size=7)
    assert not fed.dead_letters
    rows = {r["post_id"]: r for r in fed.tables["posts"]}
    for n, when in enumerate(INSTANTS):
        live, tombstone = rows[f"post-{n}"], rows[f"post-{100 + n}"]
        assert as_utc(live["created_at"]) == when, n
        assert as_utc(live["updated_at"]) == INSTANTS[-1 - n], n
        assert as_utc(tombstone["deleted_at"]) == when, n
        assert as_utc(tombstone["updated_at"]) == when, n


@pytest.mark.parametrize("micros", [0, 1, 999_999])
def test_a_datetime_record_keeps_its_microseconds(pg_url: str, micros: int) -> None:
    """Records built by hand (not decoded) may hold datetimes finer than Avro's
    milliseconds; the PostgreSQL merge stores them to the microsecond, as before."""
    projection = BlogProjection()
    engine = make_engine(pg_url)
    try:
        metadata = sa.MetaData()
        projection.define_tables(metadata)
        metadata.create_all(engine)
        when = datetime(2026, 6, 1, 12, 0, 0, micros, tzinfo=UTC)
        naive = (when + timedelta(days=1)).replace(tzinfo=None)  # naive means UTC
        record = _update(1, when, naive)
        event = Event("blog.posts", 0, 0, BLOG_POST_UPDATED, record["event_id"], record)  # type: ignore[arg-type]
        with engine.begin() as conn:
            projection.apply(conn, [event])
        with engine.connect() as conn:
            row = conn.execute(sa.select(projection.posts)).one()
        assert row.created_at == when
        assert row.updated_at == when + timedelta(days=1)
    finally:
        engine.dispose()
