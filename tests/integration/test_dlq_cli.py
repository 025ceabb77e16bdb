"""``projectionist dlq list|show|replay|purge`` against a real broker and PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections import Counter

import sqlalchemy as sa

from tests.faults.checker import expected
from tests.faults.stream import build_stream, publish
from tests.support import PROJECTIONIST, json_line, run_cli
from tests.support.oracle import assert_blog_matches

DRAIN = ["consume", "blog", "--drain", "--json", "--timeout", "120"]


def _json(args: list[str], env: dict[str, str]) -> dict[str, object]:
    result = run_cli(args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def _parked_keys(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM parked_keys")).scalar_one())
    finally:
        engine.dispose()


def test_dlq_list_show_replay_purge(bootstrap: str, topic_env: dict[str, str], pg_url: str) -> None:
    """Park-key poison: list counts it, show decodes it, replay applies parked events once, purge empties."""
    items = build_stream(random.Random(77), posts=200, poison=12)
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    published = publish(bootstrap, topic, items)
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": pg_url,
        "PROJECTIONIST_DEAD_LETTER_MODE": "park-key",
    }
    consumed = run_cli(DRAIN, env=env)
    assert consumed.returncode == 0, consumed.stderr[-3000:]
    assert json_line(consumed.stdout)["parked"] > 0
    want = expected(published, "park-key", dedup=False)
    outcomes = Counter(want.outcome.values())

    listed = _json(["dlq", "list", "blog", "--json"], env)
    assert listed["distinct"] == outcomes["dead"] + outcomes["parked"]
    by_reason = Counter()
    for row in listed["by_class"]:  # type: ignore[attr-defined]
        by_reason[row["reason"]] += row["count"]
    assert by_reason == {"poison": outcomes["dead"], "parked": outcomes["parked"]}

    invalid = next(p for p in published if p.item.poison == "InvalidEventError")
    shown = run_cli(
        [
            "dlq",
            "show",
            "blog",
            "--partition",
            str(invalid.partition),
            "--offset",
            str(invalid.offset),
        ],
        env=env,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    detail = json.loads(shown.stdout)
    assert detail["dlq"]["error.class"] == "InvalidEventError"
    assert detail["event"]["event_id"] == invalid.item.event_id

    assert run_cli(["dlq", "replay", "blog"], env=env).returncode == 2, "replay needs a selection"
    first = _json(["dlq", "replay", "blog", "--reason", "parked", "--json"], env)
    assert first["replayed"] == outcomes["parked"]
    assert first["unparked"] > 0
    assert_blog_matches(pg_url, expected(published, "skip", dedup=False).applied)
    again = _json(["dlq", "replay", "blog", "--all", "--json"], env)
    assert again["replayed"] == 0, "a second replay applied something again"
    assert again["already"] == outcomes["parked"]
    assert_blog_matches(pg_url, expected(published, "skip", dedup=False).applied)
    assert _parked_keys(pg_url) == 0, "replaying every dead letter leaves no key parked"

    declined = subprocess.run(
        [PROJECTIONIST, "dlq", "purge", "blog"],
        env={**os.environ, **env},
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert declined.returncode == 1, declined.stderr[-3000:]
    assert "Delete every message" in declined.stdout
    assert _json(["dlq", "list", "blog", "--json"], env)["messages"] == listed["messages"]
    purged = run_cli(["dlq", "purge", "blog", "--yes"], env=env)
    assert purged.returncode == 0, purged.stderr[-3000:]
    assert _json(["dlq", "list", "blog", "--json"], env)["messages"] == 0
