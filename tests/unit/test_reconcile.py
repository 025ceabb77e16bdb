"""Tag-cloud reconciliation finds injected drift and repairs it (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from producers import blog_events
from projections import BlogProjection
from projections.reconcile import DriftReport, ReconcileSchedule, TagCloudReconciler, TagDrift
from tests.support import wait_for
from tests.support.folding import Folder
from tests.support.oracle import assert_blog_matches, blog_oracle

EVENTS = blog_events(posts=200, seed=71)


@pytest.fixture
def folded(db_url: str) -> Iterator[Folder]:
    folder = Folder(db_url, BlogProjection(topic="blog.posts"))
    folder.fold(EVENTS)
    yield folder
    folder.close()


def _inject_drift(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE tag_cloud_v1 SET posts_count = posts_count + 3 WHERE tag = 'python'")
        )
        conn.execute(sa.text("DELETE FROM tag_cloud_v1 WHERE tag = 'kafka'"))
        conn.execute(sa.text("INSERT INTO tag_cloud_v1 (tag, posts_count) VALUES ('ghost', 2)"))


def test_finds_injected_drift_and_repairs_it(folded: Folder, db_url: str) -> None:
    """Each drifted tag is reported with stored, expected and delta; --repair restores the oracle."""
    projection = folded.processor.projection
    assert isinstance(projection, BlogProjection)
    reconciler = TagCloudReconciler(engine=folded.processor.engine, projection=projection)
    clean = reconciler.run()
    assert clean.drift == {}
    assert clean.posts_scanned == len(blog_oracle(EVENTS).live)
    cloud = blog_oracle(EVENTS).tag_cloud
    _inject_drift(folded.processor.engine)
    found = reconciler.run()
    assert found.drift == {
        "python": TagDrift(stored=cloud["python"] + 3, expected=cloud["python"]),
        "kafka": TagDrift(stored=0, expected=cloud["kafka"]),
        "ghost": TagDrift(stored=2, expected=0),
    }
    assert found.drift["python"].delta == -3
    assert not found.repaired
    assert found.as_dict()["drift"]["kafka"]["delta"] == cloud["kafka"]
    assert reconciler.run().drift == found.drift, "a report without --repair must change nothing"
    fixed = reconciler.run(repair=True)
    assert fixed.repaired
    assert reconciler.run().drift == {}
    assert_blog_matches(db_url, EVENTS)


def test_schedule_repairs_on_its_interval(folded: Folder, db_url: str) -> None:
    """Inside a service the schedule finds and repairs drift on its own, reporting each run."""
    projection = folded.processor.projection
    assert isinstance(projection, BlogProjection)
    reports: list[DriftReport] = []
    schedule = ReconcileSchedule(
        TagCloudReconciler(engine=folded.processor.engine, projection=projection),
        interval_s=0.05,
        on_report=reports.append,
    )
    schedule.start()
    try:
        _inject_drift(folded.processor.engine)
        wait_for("a repairing run", lambda: any(r.repaired for r in reports), timeout_s=20)
    finally:
        schedule.stop()
    assert_blog_matches(db_url, EVENTS)
