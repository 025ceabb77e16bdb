"""The blog's timestamps are stored exactly, at both ends of the range a datetime holds.

On PostgreSQL they travel to the merge as int microseconds and become ``timestamptz``
in SQL (projections.blog._timestamptz); on SQLite through ``from_millis``. Both must
give back the instant the event carried, to the millisecond of the Avro value (and to
the microsecond of a datetime handed to ``apply`` directly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _blog(url: str) -> Iterator[tuple[sa.Engine, BlogProjection]]:
    """An engine on ``url`` with the blog's tables created, disposed after."""
    projection = BlogProjection()
    engine = make_engine(url)
    try:
        metadata = sa.MetaData()
        projection.define_tables(metadata)
        metadata.create_all(engine)
        yield engine, projection
    finally:
        engine.dispose()


@pytest.mark.parametrize("micros", [0, 1, 999_999])
def test_a_datetime_record_keeps_its_microseconds(pg_url: str, micros: int) -> None:
    """Records built by hand (not decoded) may hold datetimes finer than Avro's
    milliseconds; the PostgreSQL merge stores them to the microsecond, as before."""
    with _blog(pg_url) as (engine, projection):
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


def _event(n: int, post: int, version: int, tags: list[str]) -> Event:
    record = _update(n, INSTANTS[4], INSTANTS[4])
    record.update(post_id=f"post-{post}", version=version, tags=tags)
    return Event("blog.posts", 0, n, BLOG_POST_UPDATED, record["event_id"], record)  # type: ignore[arg-type]


def test_several_applies_in_one_transaction(db_url: str) -> None:
    """Poison isolation applies halves of a batch in one transaction: each apply sees the
    rows the previous one wrote (not its staged rows again), stale counts and the tag
    cloud follow, and PostgreSQL's staging table is empty after each merge."""
    with _blog(db_url) as (engine, projection):
        with engine.begin() as conn:
            first = projection.apply(conn, [_event(1, 1, 1, ["a", "b"]), _event(2, 2, 1, ["a"])])
            second = projection.apply(conn, [_event(3, 1, 2, ["b", "c"]), _event(4, 2, 1, ["z"])])
            third = projection.apply(conn, [_event(5, 1, 1, ["q"]), _event(6, 1, 3, ["c"])])
            if conn.dialect.name == "postgresql":
                staged = conn.exec_driver_sql(
                    f'SELECT count(*) FROM "pj_staging_{projection.posts.name}_us"'
                ).scalar_one()
                assert staged == 0
        assert (first.applied, first.stale) == (2, 0)
        assert (second.applied, second.stale) == (1, 1)  # post 2's version 1 again
        assert (third.applied, third.stale) == (1, 1)  # version 1 after 2, then 3 applies
        with engine.connect() as conn:
            posts = {
                r.post_id: (r.version, r.tags) for r in conn.execute(sa.select(projection.posts))
            }
            cloud = {r.tag: r.posts_count for r in conn.execute(sa.select(projection.tag_cloud))}
        assert posts == {"post-1": (3, '["c"]'), "post-2": (1, '["a"]')}
        assert cloud == {"a": 1, "c": 1}
