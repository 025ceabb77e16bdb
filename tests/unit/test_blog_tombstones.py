"""The blog's tombstones are a pure function of the log, whatever the batch boundaries."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from consumers.testing import Given, feed
from producers import SampleEvent, blog_events
from projections import BlogProjection
from schemas.events import BLOG_POST_DELETED, BLOG_POST_UPDATED
from tests.support.oracle import blog_oracle


def _log_with_resurrections(seed: int = 7) -> list[SampleEvent]:
    """Sample blog events, plus updates of higher versions and second deletes after deletes."""
    events = blog_events(posts=120, edits_per_post=2.0, delete_ratio=0.3, seed=seed)
    rng = random.Random(seed)
    out: list[SampleEvent] = []
    for event in events:
        out.append(event)
        if event.event_type != BLOG_POST_DELETED:
            continue
        r = event.record
        later: dict[str, Any] = {
            "event_id": f"00000000-0000-4000-8000-{rng.getrandbits(48):012x}",
            "post_id": r["post_id"],
            "title": "resurrected?",
            "description": "no",
            "tags": ["zombie"],
            "author": "nobody",
            "creation_date": r["deleted_at"],
            "updated_at": r["deleted_at"] + timedelta(hours=1),
            "version": r["version"] + 5,
        }
        out.append(SampleEvent("blog", BLOG_POST_UPDATED, r["post_id"], later))
        if rng.random() < 0.5:
            again = dict(r, event_id=later["event_id"][:-1] + "f", version=r["version"] + 9)
            again["deleted_at"] = r["deleted_at"] + timedelta(days=1)
            out.append(SampleEvent("blog", BLOG_POST_DELETED, r["post_id"], again))
    return out


def _posts(events: list[SampleEvent], url: str, batch_size: int) -> list[dict[str, Any]]:
    fed = feed(
        BlogProjection(),
        [Given(e.event_type, e.record, e.key) for e in events],
        database_url=url,
        batch_size=batch_size,
        partitions=3,
    )
    assert not fed.dead_letters
    return fed.tables["posts"]


def test_tombstones_do_not_depend_on_batching(tmp_path: Path) -> None:
    """The same log in batches of 1, 4 and 500 gives identical posts, equal to the oracle:
    each tombstone carries its first delete's version, and no later event shows on it."""
    events = _log_with_resurrections()
    expected = blog_oracle(events)
    assert len(expected.tombstones) > 20
    tables = [_posts(events, f"sqlite:///{tmp_path}/b{size}.db", size) for size in (1, 4, 500)]
    assert tables[0] == tables[1] == tables[2]
    tombstones = {r["post_id"]: r for r in tables[0] if r["deleted_at"] is not None}
    assert {p: r["version"] for p, r in tombstones.items()} == expected.tombstones
    assert all(r["tags"] == "[]" and r["title"] is None for r in tombstones.values())
    firsts: dict[str, Any] = {}
    for e in events:
        if e.event_type == BLOG_POST_DELETED:
            firsts.setdefault(e.key, e.record)
    for post_id, row in tombstones.items():
        assert row["last_event_id"] == firsts[post_id]["event_id"]
