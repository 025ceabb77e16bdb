"""`projectionist produce`: the load generator over the command services and raw publisher."""

from __future__ import annotations

import re
from pathlib import Path

from producers.loadgen import noisy_sample
from tests.support import json_line, run_cli
from tests.support.commands import outbox_events, unpublished
from tests.support.oracle import assert_blog_matches

CONSUME = ["consume", "blog", "--drain", "--json", "--timeout", "120"]


def test_produce_via_commands_then_project_matches_oracle(
    topic_env: dict[str, str], tmp_path: Path, sqlite_url: str
) -> None:
    """Commands at a target rate → outbox → relay → consumer: the read model equals the oracle
    computed from the outbox, and the generator reports its throughput."""
    commands_url = f"sqlite:///{tmp_path / 'commands.db'}"
    env = {
        **topic_env,
        "PROJECTIONIST_COMMAND_DATABASE_URL": commands_url,
        "PROJECTIONIST_DATABASE_URL": sqlite_url,
    }
    result = run_cli(["produce", "--count", "600", "--rate", "400", "--seed", "5"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"commands: [\d,]+/600 in [\d.]+ s → [\d,]+/s", result.stdout), result.stdout
    elapsed = float(re.findall(r"commands: 600/600 in ([\d.]+) s", result.stdout)[-1])
    assert elapsed >= 1.3, f"600 commands at 400/s took only {elapsed}s: not paced"
    events = outbox_events(commands_url)
    assert f"relay: published {len(events):,} events" in result.stdout
    assert unpublished(commands_url) == 0
    blog = [e for e in events if e.aggregate == "blog"]
    assert len({e.key for e in events if e.aggregate == "orders"}) > 10, "no orders were fulfilled"
    consumed = run_cli(CONSUME, env=env)
    assert consumed.returncode == 0, consumed.stderr[-3000:]
    assert json_line(consumed.stdout)["consumed"] == len(blog)
    assert_blog_matches(sqlite_url, blog)


def test_produce_via_publisher_with_noise(topic_env: dict[str, str], sqlite_url: str) -> None:
    """Raw publishing with duplicates and out-of-order versions: the projection shrugs them off."""
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": sqlite_url}
    result = run_cli(
        [
            "produce",
            "--via",
            "publisher",
            "--count",
            "2000",
            "--duplicates",
            "0.05",
            "--out-of-order",
            "0.05",
            "--seed",
            "9",
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "published 2,000 events at" in result.stdout
    consumed = run_cli(CONSUME, env=env)
    assert consumed.returncode == 0, consumed.stderr[-3000:]
    stats = json_line(consumed.stdout)
    sent = [
        e
        for e in noisy_sample(count=2000, duplicates=0.05, out_of_order=0.05, seed=9)
        if e.aggregate == "blog"
    ]
    assert stats["consumed"] == len(sent) == 1800  # the blog share; orders go to their own topic
    assert len({e.record["event_id"] for e in sent}) < len(sent), "no duplicates were injected"
    newest: dict[str, int] = {}
    late = 0
    for e in sent:
        late += e.record["version"] < newest.get(e.key, 0)
        newest[e.key] = max(e.record["version"], newest.get(e.key, 0))
    assert late > 0, "no out-of-order versions were injected"
    assert_blog_matches(sqlite_url, sent)
