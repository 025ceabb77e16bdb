"""Replay from a time or offsets into a running consumer, and status output (real broker)."""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from producers import blog_events
from tests.support import checkpoint_total, json_line, run_cli, start_cli, wait_for
from tests.support.broker import publish
from tests.support.oracle import assert_blog_matches

DRAIN = ["consume", "blog", "--drain", "--json", "--timeout", "120"]


def _status(env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(["status", "--json"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    entry: dict[str, Any] = json.loads(result.stdout)["projections"][0]
    return entry


def _per_partition(env: dict[str, str], count: int) -> Counter[int]:
    """Events per partition, read back from status after draining ``count`` events."""
    status = _status(env)
    parts = status["generations"][0]["partitions"]
    assert sum(p["high_watermark"] for p in parts) == count
    return Counter({p["partition"]: p["high_watermark"] for p in parts})


def test_replay_from_time_reapplies_exactly_the_later_events(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str
) -> None:
    """Replay --from T: the running consumer re-seeks and re-applies exactly the events at or after T."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    events = blog_events(posts=400, seed=61)
    before, after = events[: len(events) // 2], events[len(events) // 2 :]
    publish(bootstrap, topic, before)  # flushed: the broker stamps its batches before T
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": sqlite_url}
    assert run_cli(DRAIN, env=env).returncode == 0
    split = _per_partition(env, len(before))
    moment = datetime.now(UTC)
    wait_for("the clock to pass T", lambda: datetime.now(UTC) > moment, every_s=0.001)
    publish(bootstrap, topic, after)
    live = start_cli(["consume", "blog", "--json"], env=env)
    try:
        wait_for(
            "the live consumer to catch up",
            lambda: checkpoint_total(sqlite_url, "blog_v1") == len(events),
        )
        at = moment.isoformat()
        dry = run_cli(["replay", "blog", "--from", at, "--dry-run", "--json"], env=env)
        assert dry.returncode == 0, dry.stderr[-3000:]
        plan = json.loads(dry.stdout)
        assert plan["events_to_reapply"] == len(after)
        assert {p["partition"]: p["rewind_to"] for p in plan["partitions"]} == dict(split)
        assert checkpoint_total(sqlite_url, "blog_v1") == len(events), "--dry-run changed state"
        # a time after the last event: the embedded broker answers offset 0, which the
        # record timestamps refute, so nothing is planned
        future = run_cli(
            ["replay", "blog", "--from", "2030-01-01T00:00:00Z", "--dry-run", "--json"], env=env
        )
        assert future.returncode == 0, future.stderr[-3000:]
        assert json.loads(future.stdout)["events_to_reapply"] == 0

        done = run_cli(["replay", "blog", "--from", at], env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "epoch 1" in done.stdout
        wait_for(
            "the running consumer to re-apply the replayed events",
            lambda: checkpoint_total(sqlite_url, "blog_v1") == len(events),
        )
        wait_for(
            "status to show it live", lambda: _status(env)["generations"][0]["state"] == "live"
        )
    finally:
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=30)
    assert live.returncode == 0, err[-3000:]
    stats = json_line(out)
    assert stats["consumed"] == len(after) * 2, "replay re-applied the wrong events"
    assert stats["applied"] == len(after), "a replayed event changed the read model"
    assert stats["stale"] == len(after)
    assert_blog_matches(sqlite_url, events)


def test_replay_offsets_and_refusals(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str
) -> None:
    """Replay by explicit offsets moves exactly those checkpoints; bad input gets one clear line."""
    events = blog_events(posts=100, seed=71)
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events)
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": sqlite_url}
    assert run_cli(DRAIN, env=env).returncode == 0
    result = run_cli(["replay", "blog", "--from", "0=10,2=0", "--json"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads(result.stdout)
    rewound = {p["partition"]: p["rewind_to"] for p in plan["partitions"]}
    highs = {p["partition"]: p["high_watermark"] for p in plan["partitions"]}
    assert rewound == {0: 10, 1: highs[1], 2: 0, 3: highs[3]}
    assert checkpoint_total(sqlite_url, "blog_v1") == len(events) - (highs[0] - 10) - highs[2]
    bad = run_cli(["replay", "blog", "--from", "yesterday"], env=env)
    assert bad.returncode == 2
    assert "expected an ISO-8601 time" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_status_json_and_table(bootstrap: str, topic_env: dict[str, str], db_url: str) -> None:
    """Status shows version, state, checkpoint, high watermark, lag and age per partition."""
    events = blog_events(posts=150, seed=81)
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events[:300])
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": db_url}
    never = _status(env)
    assert never["active_generation"] == 1
    assert never["generations"][0]["state"] == "stopped"
    assert all(p["checkpoint"] is None for p in never["generations"][0]["partitions"])
    assert all(p["last_event_age_s"] is None for p in never["generations"][0]["partitions"])
    assert sum(p["lag"] for p in never["generations"][0]["partitions"]) == 300

    assert run_cli(DRAIN, env=env).returncode == 0
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events[300:])
    status = _status(env)
    assert set(status) == {
        "projection",
        "active_generation",
        "previous_generation",
        "rebuilding_generation",
        "epoch",
        "paused",
        "dead_letters",
        "generations",
    }
    assert status["paused"] is None
    assert status["dead_letters"] == {"distinct": 0, "refused": 0, "messages": 0}
    (gen,) = status["generations"]
    assert (gen["generation"], gen["slot"], gen["role"], gen["state"]) == (
        1,
        "blog_v1",
        "active",
        "stopped",
    )
    assert [p["partition"] for p in gen["partitions"]] == [0, 1, 2, 3]
    for p in gen["partitions"]:
        assert set(p) == {
            "topic",
            "partition",
            "checkpoint",
            "high_watermark",
            "lag",
            "last_applied_age_s",
            "last_event_age_s",
            "dead_letters",
            "owner",
        }
        assert p["owner"] is None  # nobody runs it now
        assert p["lag"] == p["high_watermark"] - (p["checkpoint"] + 1)
        assert 0 <= p["last_applied_age_s"] < 120
        # the event was published before it was applied, so it is at least as old
        assert p["last_event_age_s"] >= p["last_applied_age_s"] - 1
        assert p["dead_letters"] == 0
    assert sum(p["lag"] for p in gen["partitions"]) == len(events) - 300

    table = run_cli(["status"], env={**env, "COLUMNS": "120"})
    assert table.returncode == 0, table.stderr[-3000:]
    assert "queries read v1" in table.stdout
    assert "stopped" in table.stdout
