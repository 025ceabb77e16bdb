"""``projectionist rebuild --workers N``: the partitions drained by N processes (real broker,
both databases) — the same rows as the live projection and the oracle, and a stop or a
dead worker swaps nothing and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from producers import blog_events, with_noise
from tests.support import checkpoint_total, run_cli, start_cli, wait_for
from tests.support.broker import publish
from tests.support.databases import blog_posts, query_rows
from tests.support.oracle import assert_blog_matches
from tests.support.processes import PROJECTIONIST

DRAIN = ["consume", "blog", "--drain", "--json", "--timeout", "120"]


def _generations(url: str) -> tuple[Any, ...]:
    (row,) = query_rows(
        url,
        "SELECT active_generation, rebuilding_generation FROM projection_versions "
        "WHERE projection = 'blog'",
    )
    return row


def _children(pid: int) -> set[int]:
    """The rebuild workers among ``pid``'s child processes (Linux /proc): spawned
    interpreters, not multiprocessing's resource tracker (which ends on its own once
    its pipe closes)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, task.read_text().split()):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline:
                found.add(child)
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _env(topic_env: dict[str, str], db_url: str) -> dict[str, str]:
    return {**topic_env, "PROJECTIONIST_DATABASE_URL": db_url}


def test_workers_rebuild_equals_live_and_the_oracle(
    bootstrap: str, topic_env: dict[str, str], db_url: str
) -> None:
    events = with_noise(
        blog_events(posts=600, seed=47), duplicate_ratio=0.05, stale_ratio=0.05, seed=47
    )
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events, partitions=4)
    env = _env(topic_env, db_url)
    live = run_cli(DRAIN, env=env)
    assert live.returncode == 0, live.stderr[-3000:]

    result = run_cli(
        ["rebuild", "blog", "--json", "--workers", "3", "--batch-max-messages", "100"], env=env
    )

    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["swapped"] is True
    assert summary["events"] == len(events)
    assert sorted(summary["handed_over_at"]) == [
        f"{topic_env['PROJECTIONIST_BLOG_TOPIC']}[{p}]" for p in range(4)
    ]
    assert checkpoint_total(db_url, "blog_v2") == len(events)
    assert blog_posts(db_url, "posts_v2") == blog_posts(db_url, "posts_v1")
    assert query_rows(
        db_url, "SELECT tag, posts_count FROM tag_cloud_v2 ORDER BY tag"
    ) == query_rows(db_url, "SELECT tag, posts_count FROM tag_cloud_v1 ORDER BY tag")
    assert_blog_matches(db_url, events, generation=2)
    assert _generations(db_url) == (2, None)
    # the workers' log lines go to stderr like the command's own: stdout stays one JSON line
    assert len(result.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize("how", ["sigterm", "worker killed", "parent killed"])
def test_a_stopped_or_dead_worker_swaps_nothing(
    bootstrap: str, topic_env: dict[str, str], db_url: str, how: str
) -> None:
    events = blog_events(posts=3000, seed=53)
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events, partitions=4)
    env = _env(topic_env, db_url)
    live = run_cli(DRAIN, env=env)
    assert live.returncode == 0, live.stderr[-3000:]
    before = blog_posts(db_url, "posts")

    proc = start_cli(["rebuild", "blog", "--workers", "2", "--batch-max-messages", "20"], env=env)
    workers: set[int] = set()

    def started() -> bool:
        workers.update(_children(proc.pid))
        return proc.poll() is not None or (
            len(workers) >= 2 and checkpoint_total(db_url, "blog_v2") > 0
        )

    wait_for("both workers applying batches", started, timeout_s=90, every_s=0.02)
    assert proc.poll() is None, f"the rebuild ended before the stop: {proc.communicate()}"
    assert checkpoint_total(db_url, "blog_v2") < len(events), "the stop came too late"
    workers = {w for w in workers if _alive(w) and w != proc.pid}
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    elif how == "parent killed":
        proc.send_signal(signal.SIGKILL)
    else:
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)

    if how == "sigterm":
        assert proc.returncode == 130, err[-3000:]
        assert "nothing was swapped" in out + err
    elif how == "parent killed":
        # the workers are told by the kernel (PR_SET_PDEATHSIG) and end their batch
        wait_for(
            "the workers to stop after their parent",
            lambda: not [w for w in workers if _alive(w)],
            timeout_s=30,
        )
    else:
        assert proc.returncode == 1, err[-3000:]
        assert "rebuild worker" in err
        assert "nothing was swapped" in err
        assert "Traceback" not in err
    assert not [w for w in workers if _alive(w)], "a worker outlived the rebuild"
    assert _generations(db_url)[0] == 1
    assert blog_posts(db_url, "posts") == before
    again = run_cli(["rebuild", "blog", "--json", "--workers", "2"], env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["events"] == len(events)
    assert_blog_matches(db_url, events, generation=_generations(db_url)[0])


def test_ctrl_c_while_the_workers_start(
    bootstrap: str, topic_env: dict[str, str], db_url: str
) -> None:
    """Ctrl-C reaches the terminal's whole process group, workers still importing
    included: the rebuild stops with its one line, no traceback, nothing swapped."""
    events = blog_events(posts=2000, seed=59)
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events, partitions=4)
    env = _env(topic_env, db_url)
    live = run_cli(DRAIN, env=env)
    assert live.returncode == 0, live.stderr[-3000:]
    proc = subprocess.Popen(
        [PROJECTIONIST, "rebuild", "blog", "--workers", "2", "--batch-max-messages", "20"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    wait_for(
        "the workers spawned",
        lambda: proc.poll() is not None or len(_children(proc.pid)) >= 2,
        timeout_s=60,
        every_s=0.01,
    )
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "KeyboardInterrupt" not in err, err[-3000:]
    assert "nothing was swapped" in out + err
    assert _generations(db_url) == (1, None)
