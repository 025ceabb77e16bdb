"""The expected read models, computed from the list of published events alone.

Written independently of ``projections`` from the fold rules in its docs: the newest
version of a post wins, a delete is terminal, duplicates and stale versions change
nothing, and the tag cloud counts live posts per tag.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from producers import SampleEvent


@dataclass
class BlogModel:
    live: dict[str, dict[str, Any]]  # post_id -> expected columns
    deleted: set[str]
    tag_cloud: dict[str, int]


def blog_oracle(events: Iterable[SampleEvent]) -> BlogModel:
    newest: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    for ev in events:
        r = ev.record
        if ev.event_type == "blog.BlogPostDeleted":
            deleted.add(r["post_id"])
        elif ev.event_type == "blog.BlogPostUpdated":
            current = newest.get(r["post_id"])
            if current is None or r["version"] > current["version"]:
                newest[r["post_id"]] = r
    live = {
        pid: {
            "title": r["title"],
            "description": r["description"],
            "tags": sorted(set(r["tags"])),
            "author": r["author"],
            "version": r["version"],
        }
        for pid, r in newest.items()
        if pid not in deleted
    }
    cloud: Counter[str] = Counter()
    for row in live.values():
        cloud.update(row["tags"])
    return BlogModel(live, deleted, dict(cloud))


def blog_actual(url: str, generation: int = 1) -> BlogModel:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            live, deleted = {}, set()
            for row in conn.execute(
                sa.text(
                    f"SELECT post_id, title, description, tags, author, version, deleted_at FROM posts_v{generation}"
                )
            ).mappings():
                if row["deleted_at"] is not None:
                    deleted.add(row["post_id"])
                else:
                    live[row["post_id"]] = {
                        "title": row["title"],
                        "description": row["description"],
                        "tags": sorted(json.loads(row["tags"])),
                        "author": row["author"],
                        "version": row["version"],
                    }
            cloud = {
                r.tag: r.posts_count
                for r in conn.execute(
                    sa.text(f"SELECT tag, posts_count FROM tag_cloud_v{generation}")
                )
            }
        return BlogModel(live, deleted, cloud)
    finally:
        engine.dispose()


def assert_blog_matches(url: str, events: Iterable[SampleEvent], generation: int = 1) -> BlogModel:
    expected = blog_oracle(events)
    actual = blog_actual(url, generation)
    wrong = [
        pid
        for pid in expected.live.keys() | actual.live.keys()
        if expected.live.get(pid) != actual.live.get(pid)
    ]
    assert not wrong, (
        f"{len(wrong)} posts differ, e.g. {wrong[0]}: expected {expected.live.get(wrong[0])}, got {actual.live.get(wrong[0])}"
    )
    assert actual.deleted == expected.deleted, (
        f"tombstones differ: missing {sorted(expected.deleted - actual.deleted)[:5]}, "
        f"extra {sorted(actual.deleted - expected.deleted)[:5]}"
    )
    diff = {
        t: (expected.tag_cloud.get(t), actual.tag_cloud.get(t))
        for t in expected.tag_cloud.keys() | actual.tag_cloud.keys()
        if expected.tag_cloud.get(t) != actual.tag_cloud.get(t)
    }
    assert not diff, f"tag cloud differs (expected, actual): {dict(list(diff.items())[:10])}"
    return expected
