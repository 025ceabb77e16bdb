"""`projectionist reconcile tag-cloud` as a user runs it: report, repair, schedule."""

from __future__ import annotations

import json
import signal

import sqlalchemy as sa

from producers import blog_events
from projections import BlogProjection
from tests.support import TEST_ENV, run_cli, start_cli, wait_for
from tests.support.folding import Folder
from tests.support.oracle import assert_blog_matches


def _drift(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE tag_cloud_v1 SET posts_count = posts_count + 2 WHERE tag = 'sql'")
            )
    finally:
        engine.dispose()


def test_report_exits_1_on_drift_and_repair_fixes_it(sqlite_url: str) -> None:
    """Drift is printed as JSON with exit 1; --repair exits 0; the next check is clean."""
    events = blog_events(posts=100, seed=72)
    folder = Folder(sqlite_url, BlogProjection(topic="blog.posts"))
    folder.fold(events)
    folder.close()
    _drift(sqlite_url)
    args = ["reconcile", "tag-cloud", "--json", "-d", sqlite_url]
    found = run_cli(args, env=TEST_ENV, timeout_s=60)
    assert found.returncode == 1, found.stderr
    report = json.loads(found.stdout.strip().splitlines()[-1])
    assert report["drift"]["sql"]["delta"] == -2
    assert report["repaired"] is False
    fixed = run_cli([*args, "--repair"], env=TEST_ENV, timeout_s=60)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout.strip().splitlines()[-1])["repaired"] is True
    clean = run_cli(args, env=TEST_ENV, timeout_s=60)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout.strip().splitlines()[-1])["drifted_tags"] == 0
    assert_blog_matches(sqlite_url, events)


def test_scheduled_reconcile_repairs_until_sigterm(sqlite_url: str) -> None:
    """With --interval it runs until SIGTERM, repairing drift that appears meanwhile."""
    events = blog_events(posts=60, seed=73)
    folder = Folder(sqlite_url, BlogProjection(topic="blog.posts"))
    folder.fold(events)
    folder.close()
    proc = start_cli(
        ["reconcile", "tag-cloud", "--repair", "--json", "-d", sqlite_url],
        env={**TEST_ENV, "PROJECTIONIST_RECONCILE_INTERVAL_S": "0.2"},
    )
    try:
        _drift(sqlite_url)
        wait_for(
            "the drift repaired",
            lambda: proc.poll() is not None or _clean(sqlite_url),
            timeout_s=30,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-3000:]
    reports = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(r["repaired"] and "sql" in r["drift"] for r in reports)
    assert_blog_matches(sqlite_url, events)


def _clean(url: str) -> bool:
    try:
        assert_blog_matches(url, blog_events(posts=60, seed=73))
    except AssertionError:
        return False
    return True


def test_unknown_target_is_a_user_mistake() -> None:
    """`reconcile nosuch` is exit 2 with one line naming what is known."""
    result = run_cli(
        ["reconcile", "nosuch", "-d", "sqlite:///unused.db"], env=TEST_ENV, timeout_s=30
    )
    assert result.returncode == 2
    assert "known: tag-cloud" in result.stderr
    assert "Traceback" not in result.stderr
