"""Exactly-once effects through real process kills, rebalances and SIGTERM (real broker)."""

from __future__ import annotations

import signal
import time

from producers import blog_events, with_noise
from tests.support import checkpoint_total, json_line, run_cli, start_cli, wait_for
from tests.support.broker import publish
from tests.support.oracle import assert_blog_matches

CONSUME = ["consume", "blog", "--drain", "--json", "--timeout", "120"]


def test_sigkill_twice_then_restart_matches_oracle(
    bootstrap: str, topic_env: dict[str, str], db_url: str
) -> None:
    """Kill -9 the consumer part-way twice; after a restart the read model equals the oracle."""
    events = with_noise(
        blog_events(posts=1_500, seed=21), duplicate_ratio=0.05, stale_ratio=0.05, seed=21
    )
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events)
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": db_url,
        "PROJECTIONIST_BATCH_MAX_MESSAGES": "50",
    }
    total = len(events)
    for fraction in (0.2, 0.55):
        proc = start_cli(CONSUME, env=env)
        progressed = wait_for(
            f"{fraction:.0%} of the events checkpointed",
            lambda f=fraction, p=proc: (
                p.poll() is not None or checkpoint_total(db_url, "blog_v1") >= f * total
            ),
            timeout_s=90,
            every_s=0.01,
        )
        assert progressed
        assert proc.poll() is None, f"consumer ended before the kill: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)  # reaps it and closes its pipes
        done = checkpoint_total(db_url, "blog_v1")
        assert 0 < done < total, f"kill was not part-way: {done}/{total}"
    final = run_cli(CONSUME, env=env)
    assert final.returncode == 0, final.stderr[-3000:]
    assert checkpoint_total(db_url, "blog_v1") == total
    assert_blog_matches(db_url, events)


def test_two_consumers_split_partitions(
    bootstrap: str, topic_env: dict[str, str], db_url: str
) -> None:
    """Two processes in one group share the partitions and together produce the oracle."""
    events = with_noise(blog_events(posts=4_000, seed=5), duplicate_ratio=0.02, seed=5)
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events)
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": db_url,
        "PROJECTIONIST_BATCH_MAX_MESSAGES": "200",
    }
    procs = [start_cli(CONSUME, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    stats = [json_line(out) for out, _ in outputs]
    assert all(s["consumed"] > 0 for s in stats), f"one consumer got no partitions: {stats}"
    assert sum(s["consumed"] for s in stats) >= len(events)
    assert checkpoint_total(db_url, "blog_v1") == len(events)
    assert_blog_matches(db_url, events)


def test_sigterm_exits_zero_and_restart_reapplies_nothing(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str
) -> None:
    """SIGTERM mid-run: exit 0 within the grace period; the restart starts after the checkpoint."""
    events = blog_events(posts=3_000, seed=8)
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events)
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": sqlite_url,
        "PROJECTIONIST_BATCH_MAX_MESSAGES": "20",
    }
    proc = start_cli(["consume", "blog", "--json"], env=env)  # run forever, as a service
    wait_for(
        "some progress",
        lambda: checkpoint_total(sqlite_url, "blog_v1") > 200,
        timeout_s=60,
        every_s=0.01,
    )
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=25)
    assert proc.returncode == 0, err[-3000:]
    assert time.monotonic() - sent < 25
    first = json_line(out)
    assert first["signal"] == "SIGTERM"
    done = checkpoint_total(sqlite_url, "blog_v1")
    assert first["consumed"] == done < len(events), "SIGTERM came too late to test a restart"
    second = run_cli(CONSUME, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json_line(second.stdout)
    assert again["skipped_offset"] == 0, "the restart re-read events it had already applied"
    assert again["consumed"] == len(events) - done
    assert first["applied"] + again["applied"] + first["stale"] + again["stale"] == len(events)
    assert_blog_matches(sqlite_url, events)
