"""Rebalance storm: three consumer processes joining and leaving at random for the whole run."""

from __future__ import annotations

import random
import subprocess
import threading
import time

import pytest

from tests.faults.checker import Report, finish
from tests.faults.fleet import DRAIN, Fleet
from tests.faults.stream import Item, Published, build_stream, publish
from tests.support import checkpoint_total, json_line, run_cli, unique, wait_for


def _trickle(
    bootstrap: str, topic: str, items: list[Item], out: list[Published], done: threading.Event
) -> None:
    """Publish in chunks over the run, so every rebalance lands while there is work."""
    try:
        for start in range(0, len(items), 150):
            out += publish(bootstrap, topic, items[start : start + 150])
            done.wait(0.4)
    finally:
        done.set()


def run_storm(
    seed: int,
    bootstrap: str,
    env: dict[str, str],
    url: str,
    *,
    posts: int,
    min_steps: int,
    max_steps: int = 40,
) -> None:
    rng = random.Random(seed)
    items = build_stream(rng, posts=posts, poison=15, duplicates=0.03, late_versions=0.03)
    topic = env["PROJECTIONIST_BLOG_TOPIC"]
    publish(bootstrap, topic, [])  # create the topics before anyone subscribes
    published: list[Published] = []
    published_all = threading.Event()
    publisher = threading.Thread(
        target=_trickle, args=(bootstrap, topic, items, published, published_all)
    )
    fleet = Fleet({**env, "PROJECTIONIST_BATCH_MAX_MESSAGES": "30"})
    slots: list[subprocess.Popen[str] | None] = [None, None, None]
    steps = 0
    try:
        slots[0] = fleet.start({"PROJECTIONIST_GROUP_INSTANCE_ID": "storm-0"})
        publisher.start()
        # Until every event is out and there was progress under churn: a seed may draw
        # steps so quick that no join completes (a static member that left holds its
        # partitions until its 6 s session expires, and each step restarts the
        # rebalance), which would check nothing; the storm then goes on, up to max_steps.
        while (
            steps < min_steps
            or not published_all.is_set()
            or (steps < max_steps and checkpoint_total(url, "blog_v1") == 0)
        ):
            i = rng.randrange(len(slots))
            proc = slots[i]
            if proc is None:
                slots[i] = fleet.start({"PROJECTIONIST_GROUP_INSTANCE_ID": f"storm-{i}"})
            else:
                # Leaving is SIGTERM, members are static (``storm-<slot>``): on the embedded
                # broker, dynamic members coming and going (SIGKILL or not) can wedge the
                # group's joins for good (a Tansu defect); test_kills covers SIGKILL.
                fleet.term(proc)
                slots[i] = None
            steps += 1
            pause = time.monotonic() + rng.uniform(2.0, 6.0)  # eager joins take ~3.5 s
            wait_for("the next storm step", lambda p=pause: time.monotonic() >= p, timeout_s=10)
        publisher.join(timeout=60)
        fleet.stop_all()
        during = checkpoint_total(url, "blog_v1")
        print(f"storm over: {during}/{len(published)} checkpointed, {steps} steps")
        # Static members that left are still in the group until their session times out,
        # and a drain only drains what it owns: finish in a group of one (the database,
        # not the group, holds the progress).
        final = run_cli(DRAIN, env={**env, "PROJECTIONIST_GROUP_PREFIX": unique("final")})
        assert final.returncode == 0, final.stderr[-3000:]
    finally:
        published_all.set()
        fleet.kill_all()
    assert len(published) == len(items)
    assert during > 0, "no progress at all during the storm: it tested nothing"
    assert checkpoint_total(url, "blog_v1") == len(published)
    report = Report(
        scenario="rebalance-storm",
        seed=seed,
        events=len(published),
        poison=sum(1 for p in published if p.item.poison),
        faults={"starts": fleet.starts, "sigterm": fleet.terms, "sigkill": fleet.kills},
    )
    finish(
        report,
        url=url,
        bootstrap=bootstrap,
        topic=topic,
        published=published,
        stats=[*fleet.stats, json_line(final.stdout)],
        dead_letter_copies_allowed=True,
    )


def test_rebalance_storm(seed: int, bootstrap: str, fault_env: dict[str, str], pg_url: str) -> None:
    """Three consumers join and leave at random during the whole run: the oracle still holds."""
    run_storm(seed, bootstrap, fault_env, pg_url, posts=700, min_steps=10)


@pytest.mark.soak
def test_rebalance_storm_soak(
    seed: int, bootstrap: str, fault_env: dict[str, str], pg_url: str
) -> None:
    """The storm for longer, with more events (make soak)."""
    run_storm(seed, bootstrap, fault_env, pg_url, posts=5_000, min_steps=60)
