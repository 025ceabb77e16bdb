"""Every reader follows the active generation across rebuild -> rollback -> rebuild -> cleanup.

One `projectionist serve` process is started before the first rebuild and kept running;
`reconcile tag-cloud` runs as a process after each step. The generations are folded
through the real batch transaction (no broker needed) and swapped by the same
``VersionStore`` calls ``rebuild`` makes; ``rollback`` and ``cleanup`` are the CLI's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from producers import SampleEvent, blog_events
from projections import BlogProjection, make_engine
from projections.generations.versions import VersionStore
from schemas.events import BLOG_POST_UPDATED
from tests.support.databases import fresh_postgres_database
from tests.support.folding import Folder
from tests.support.oracle import assert_blog_matches, blog_oracle
from tests.support.processes import TEST_ENV, run_cli
from tests.support.servers import api_server

EVENTS = blog_events(posts=150, delete_ratio=0.1, seed=12)


def _newer_edit(events: list[SampleEvent]) -> SampleEvent:
    """One more edit of a live post: what a rebuild that caught up further has seen."""
    oracle = blog_oracle(events)
    post_id = sorted(oracle.live)[0]
    last = max(
        (e for e in events if e.key == post_id and e.event_type == BLOG_POST_UPDATED),
        key=lambda e: e.record["version"],
    )
    record = dict(last.record, version=last.record["version"] + 1, tags=["rebuilt-only"])
    record["event_id"] = "00000000-0000-4000-8000-00000000beef"
    record["updated_at"] = last.record["updated_at"] + timedelta(hours=1)
    return SampleEvent("blog", BLOG_POST_UPDATED, post_id, record)


def _fold(url: str, generation: int, events: list[SampleEvent]) -> None:
    folder = Folder(url, BlogProjection(generation=generation))
    try:
        if generation == 1:  # what a consumer's start does: the version row and the views
            with folder.processor.engine.begin() as conn:
                VersionStore().ensure(conn, folder.processor.projection)
        folder.fold(events)
    finally:
        folder.close()


def _swap_in(url: str, generation: int) -> None:
    """What `rebuild` does once caught up: mark the rebuild, then swap in one transaction."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            VersionStore().begin_rebuild(conn, "blog", generation)
        with engine.begin() as conn:
            VersionStore().swap(conn, BlogProjection(generation=generation))
    finally:
        engine.dispose()


def _corrupt_cloud(url: str, generation: int) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO tag_cloud_v{generation} (tag, posts_count) VALUES ('ghost', 7)"
                )
            )
    finally:
        engine.dispose()


def _reconcile(url: str) -> tuple[int, dict[str, Any]]:
    done = run_cli(["reconcile", "tag-cloud", "--json", "-d", url], env=TEST_ENV, timeout_s=60)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def _cloud(base: str) -> dict[str, int]:
    answer = httpx.get(f"{base}/tags", params={"limit": 500}, timeout=10)
    assert answer.status_code == 200, answer.text
    return {row["tag"]: row["posts_count"] for row in answer.json()}


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


def test_readers_follow_rebuild_rollback_and_cleanup(database: str) -> None:
    """After each step the running API serves, and reconcile checks, the active generation:
    the rebuilt cloud (not the corrupted old one), the rebuilt-only version for a
    `min_version` wait, the old generation after rollback, and no error after cleanup."""
    url = database
    newer = _newer_edit(EVENTS)
    caught_up = [*EVENTS, newer]
    _fold(url, 1, EVENTS)
    _corrupt_cloud(url, 1)  # the reason for the rebuild: generation 1 drifted
    with api_server(url) as base:
        assert _cloud(base)["ghost"] == 7

        # rebuild: generation 2 from the whole log, swapped in while `serve` runs
        _fold(url, 2, caught_up)
        assert_blog_matches(url, caught_up, generation=2)
        _swap_in(url, 2)
        assert _cloud(base) == blog_oracle(caught_up).tag_cloud
        waited = httpx.get(
            f"{base}/posts/{newer.key}",
            params={"min_version": newer.record["version"], "wait_s": 2},
            timeout=10,
        )
        assert waited.status_code == 200, waited.text
        assert waited.json()["tags"] == ["rebuilt-only"]
        code, report = _reconcile(url)
        assert (code, report["table"], report["drifted_tags"]) == (0, "tag_cloud_v2", 0)
        _corrupt_cloud(url, 2)
        code, report = _reconcile(url)
        assert (code, report["table"], list(report["drift"])) == (1, "tag_cloud_v2", ["ghost"])

        # rollback: queries read generation 1 again, corrupted as it was
        done = run_cli(["rollback", "blog", "-d", url], env=TEST_ENV, timeout_s=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert _cloud(base)["ghost"] == 7
        assert httpx.get(f"{base}/posts/{newer.key}", timeout=10).json()["tags"] != ["rebuilt-only"]
        code, report = _reconcile(url)
        assert (code, report["table"]) == (1, "tag_cloud_v1")

        # rebuild again (generation 3), then cleanup drops generations 1 and 2
        _fold(url, 3, caught_up)
        _swap_in(url, 3)
        done = run_cli(["cleanup", "blog", "-d", url], env=TEST_ENV, timeout_s=60)
        assert done.returncode == 0, done.stderr[-2000:]
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert not any(sa.inspect(conn).has_table(f"posts_v{n}") for n in (1, 2))
        engine.dispose()
        assert _cloud(base) == blog_oracle(caught_up).tag_cloud
        code, report = _reconcile(url)
        assert (code, report["table"], report["drifted_tags"]) == (0, "tag_cloud_v3", 0)
