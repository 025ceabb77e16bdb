"""The fullstate workload has issue 15's shape, and the oracle check can fail."""

from __future__ import annotations

import json
from collections import Counter

from bench.fullstate import TAGS, Oracle, fullstate_events
from bench.verify import _compare
from schemas import AvroSerde, SchemaCatalog
from schemas.events import BLOG_POST_UPDATED


def test_fullstate_has_the_issue_shape() -> None:
    """Creates first (each post once), then uniform edits; versions 1, 2, 3, ... per post in
    produce order; 1-5 distinct tags of 200; 20-60 char titles, 120-char descriptions;
    ~270-byte v1 values; the oracle ends as each post's newest state."""
    oracle = Oracle()
    events = list(fullstate_events(posts=500, events=5_000, oracle=oracle))
    assert len(events) == 5_000
    assert len({p for p, _ in events[:500]}) == 500
    seen: Counter[str] = Counter()
    for post_id, r in events:
        seen[post_id] += 1
        assert r["version"] == seen[post_id]
        assert 1 <= len(r["tags"]) == len(set(r["tags"])) <= 5
        assert set(r["tags"]) <= set(TAGS)
        assert 20 <= len(r["title"]) <= 60
        assert len(r["description"]) == 120
    assert len(TAGS) == 200
    serde = AvroSerde(SchemaCatalog.load())
    sizes = [len(serde.encode(BLOG_POST_UPDATED, r, version=1)) for _, r in events[:1_000]]
    assert 240 <= sum(sizes) / len(sizes) <= 300
    last = {p: r for p, r in events}
    assert oracle.posts == {
        p: (r["version"], r["title"], tuple(r["tags"])) for p, r in last.items()
    }


def test_the_oracle_check_reports_missing_and_stale_posts() -> None:
    """A table with a post missing or an older version is reported, an exact one is not."""
    oracle = Oracle()
    list(fullstate_events(posts=50, events=200, oracle=oracle))
    rows = [(p, v, t, json.dumps(list(tags))) for p, (v, t, tags) in oracle.posts.items()]
    assert _compare(rows, oracle) == []
    assert _compare(rows[1:], oracle) == ["49 posts, expected 50"]
    stale = [(rows[0][0], rows[0][1] - 1, *rows[0][2:]), *rows[1:]]
    assert "1 posts differ" in _compare(stale, oracle)[0]
