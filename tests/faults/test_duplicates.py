"""Duplicates at new offsets and out-of-order (late) versions mixed into the stream."""

from __future__ import annotations

import random
from collections import Counter

from tests.faults.checker import Report, expected, finish
from tests.faults.fleet import DRAIN
from tests.faults.stream import build_stream, publish
from tests.support import json_line, run_cli


def test_duplicates_are_skipped_by_event_id_and_late_versions_by_version(
    seed: int, bootstrap: str, fault_env: dict[str, str], pg_url: str
) -> None:
    """15% re-published events and 10% late versions: each applied at most once, oracle holds.

    On the shipped settings (no event-id dedup) the blog's version guard turns both away."""
    rng = random.Random(seed)
    items = build_stream(rng, posts=600, duplicates=0.15, late_versions=0.10)
    topic = fault_env["PROJECTIONIST_BLOG_TOPIC"]
    published = publish(bootstrap, topic, items)
    result = run_cli(DRAIN, env=fault_env)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json_line(result.stdout)
    outcomes = Counter(expected(published, "skip").outcome.values())
    kinds = Counter(p.item.kind for p in published)
    assert outcomes["dup-id"] == kinds["duplicate"] > 0
    assert stats["stale"] >= kinds["late-version"] > 0, "late versions must lose to newer ones"
    report = Report(
        scenario="duplicates",
        seed=seed,
        events=len(published),
        poison=0,
        faults={"duplicates": kinds["duplicate"], "late_versions": kinds["late-version"]},
    )
    finish(
        report,
        url=pg_url,
        bootstrap=bootstrap,
        topic=topic,
        published=published,
        stats=[stats],
        exact={
            "consumed": len(published),
            "skipped_event_id": 0,  # event-id dedup is off in the shipped settings
            "skipped_offset": 0,
            "dead_lettered": 0,
        },
    )
