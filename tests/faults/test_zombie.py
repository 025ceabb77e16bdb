"""Zombie writer: a consumer frozen past its session timeout, resumed after its partitions moved."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.faults.checker import Report, audit_rows, finish
from tests.faults.fleet import Fleet
from tests.faults.stream import build_stream, publish
from tests.support import checkpoint_total, json_line, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _state(pid: int) -> str:
    """The process state letter from /proc (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def test_frozen_consumer_cannot_commit_its_stale_batch(
    seed: int, bootstrap: str, audited_env: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    """SIGSTOP past the session timeout, partitions move, SIGCONT: the stale batch is fenced."""
    rng = random.Random(seed)
    items = build_stream(rng, posts=500, poison=6, duplicates=0.03, late_versions=0.03)
    half = len(items) // 2
    # audited: the proof that the zombie committed nothing reads the per-offset log
    fault_env = audited_env
    topic = fault_env["PROJECTIONIST_BLOG_TOPIC"]
    published = publish(bootstrap, topic, items[:half])
    freeze = tmp_path / "freeze"
    freeze.touch()
    zombie = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.zombie_driver"],
        cwd=ROOT,
        env={**os.environ, **fault_env, "ZOMBIE_FREEZE_FILE": str(freeze)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    fleet = Fleet(fault_env)
    try:
        frozen = wait_for("the zombie to freeze", lambda: freeze.with_suffix(".frozen").exists())
        assert frozen
        wait_for("the zombie stopped", lambda: _state(zombie.pid) == "T", timeout_s=10)
        marker = json.loads(freeze.with_suffix(".frozen").read_text())
        frozen_at = time.monotonic()
        survivor = fleet.start()
        wait_for(
            "the survivor to take over and apply the first half",
            lambda: checkpoint_total(pg_url, "blog_v1") == half,
            timeout_s=90,
        )
        published += publish(bootstrap, topic, items[half:])
        frozen_s = time.monotonic() - frozen_at
        zombie.send_signal(signal.SIGCONT)
        wait_for(
            "everything applied",
            lambda: checkpoint_total(pg_url, "blog_v1") == len(published),
            timeout_s=90,
        )
        survivor_stats = fleet.term(survivor)
        assert survivor_stats is not None
        zombie.send_signal(signal.SIGTERM)
        out, err = zombie.communicate(timeout=60)
        assert zombie.returncode == 0, err[-3000:]
    finally:
        fleet.kill_all()
        if zombie.poll() is None:
            zombie.kill()
            zombie.communicate()
    zombie_stats = json_line(out)
    assert zombie_stats["fenced"] >= 1, f"the zombie's stale batch was not fenced: {zombie_stats}"
    stale = {(p, o) for _t, p, o in marker["positions"]}
    assert stale, "the zombie froze without a batch"
    written_by_zombie = [
        r
        for r in audit_rows(pg_url)
        if r["consumer"] == marker["consumer"] and (r["partition"], r["offset"]) in stale
    ]
    assert not written_by_zombie, f"the zombie committed its stale batch: {written_by_zombie[:3]}"
    report = Report(
        scenario="zombie",
        seed=seed,
        events=len(published),
        poison=sum(1 for p in published if p.item.poison),
        faults={"sigstop_s": round(frozen_s), "stale_batch_events": len(stale)},
    )
    finish(
        report,
        url=pg_url,
        bootstrap=bootstrap,
        topic=topic,
        published=published,
        stats=[survivor_stats, zombie_stats],
        # a resumed zombie sends its batch's dead letters before its transaction is fenced
        dead_letter_copies_allowed=True,
        audited=True,
    )
