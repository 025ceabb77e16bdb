"""SIGKILL at random points of a run, restarts in between (real broker, real PostgreSQL)."""

from __future__ import annotations

import random

import pytest

from tests.faults.checker import Report, finish
from tests.faults.fleet import DRAIN, Fleet
from tests.faults.stream import build_stream, publish
from tests.support import checkpoint_total, json_line, run_cli, unique, wait_for


def kill_points(rng: random.Random, total: int, n: int) -> list[int]:
    """``n`` checkpoint totals in (5%, 90%) of the run, at least 2% apart (n <= 42)."""
    slots = sorted(rng.sample(range(50, 900, 20), n))
    return [total * s // 1000 + rng.randrange(max(1, total // 50)) for s in slots]


def test_sigkill_at_ten_points_then_restart(
    seed: int, bootstrap: str, fault_env: dict[str, str], pg_url: str
) -> None:
    """Ten SIGKILLs mid-batch: after restarts nothing is lost or applied twice."""
    run_kills(seed, bootstrap, fault_env, pg_url, posts=700, kills=10)


@pytest.mark.soak
def test_sigkill_soak(seed: int, bootstrap: str, fault_env: dict[str, str], pg_url: str) -> None:
    """Forty SIGKILLs over a longer stream (make soak)."""
    run_kills(seed, bootstrap, fault_env, pg_url, posts=5_000, kills=40)


def run_kills(
    seed: int, bootstrap: str, fault_env: dict[str, str], pg_url: str, *, posts: int, kills: int
) -> None:
    rng = random.Random(seed)
    items = build_stream(rng, posts=posts, poison=20, duplicates=0.03, late_versions=0.03)
    topic = fault_env["PROJECTIONIST_BLOG_TOPIC"]
    published = publish(bootstrap, topic, items)
    env = {
        **fault_env,
        "PROJECTIONIST_BATCH_MAX_MESSAGES": "15",
    }
    fleet = Fleet(env)
    total = len(published)
    try:
        for point in kill_points(rng, total, kills):
            before = checkpoint_total(pg_url, "blog_v1")
            # A group of its own per run: the restart does not wait out the killed member's
            # session (progress lives in the database, not in the group).
            proc = fleet.start({"PROJECTIONIST_GROUP_PREFIX": unique("killed")})
            wait_for(
                f"checkpoint total past {point}",
                lambda p=point, b=before, pr=proc: (
                    pr.poll() is not None or checkpoint_total(pg_url, "blog_v1") > max(p, b)
                ),
                timeout_s=60,
                every_s=0.01,
            )
            assert proc.poll() is None, f"consumer ended before the kill: {proc.communicate()}"
            fleet.kill(proc)
        done = checkpoint_total(pg_url, "blog_v1")
        assert done < total, "the last kill came after the end: nothing left to recover"
        final = run_cli(DRAIN, env=env)
        assert final.returncode == 0, final.stderr[-3000:]
    finally:
        fleet.kill_all()
    assert checkpoint_total(pg_url, "blog_v1") == total
    report = Report(
        scenario="sigkill",
        seed=seed,
        events=total,
        poison=sum(1 for p in published if p.item.poison),
        faults={"sigkill": fleet.kills, "restarts": fleet.starts},
    )
    finish(
        report,
        url=pg_url,
        bootstrap=bootstrap,
        topic=topic,
        published=published,
        stats=[json_line(final.stdout)],
        dead_letter_copies_allowed=True,  # a kill between the DLQ ack and the DB commit
    )
