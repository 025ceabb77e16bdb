"""Operators' controls end to end: pause and resume two running consumers, status over HTTP."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import threading
import time
from typing import Any

import httpx

from consumers.kafka.broker import free_port
from producers import blog_events
from tests.support import PROJECTIONIST, checkpoint_total, json_line, run_cli, start_cli, wait_for
from tests.support.broker import publish
from tests.support.oracle import assert_blog_matches
from tests.support.runners import SLOT
from tests.support.servers import api_server


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=20)


def _entry(base: str) -> dict[str, Any]:
    answer = _get(f"{base}/status?projection=blog")
    assert answer.status_code == 200, answer.text
    (entry,) = answer.json()["projections"]
    assert entry["projection"] == "blog"
    return dict(entry)


def _partitions(entry: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = entry["generations"][0]["partitions"]
    return parts


def _rebalances(metrics: list[str]) -> list[str]:
    """Each consumer's rebalance counter line, as scraped."""
    out = []
    for base in metrics:
        lines = _get(f"{base}/metrics").text.splitlines()
        out += [line for line in lines if line.startswith("projectionist_rebalances_total")]
    return out


def _stop(procs: list[subprocess.Popen[str]]) -> list[tuple[int | None, str, str]]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    outputs = [p.communicate(timeout=60) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def test_pause_holds_two_running_consumers_and_resume_catches_up(
    bootstrap: str, topic_env: dict[str, str], pg_url: str
) -> None:
    """`pause` holds both consumers of a group within seconds while events arrive (checkpoints
    still, membership and partitions kept, status/metrics/readyz say paused); `resume`
    catches up; the tables equal the oracle and no event was consumed twice."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    events = blog_events(posts=300, seed=181)
    before, after = events[: len(events) // 2], events[len(events) // 2 :]
    publish(bootstrap, topic, before)
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": pg_url}
    ports = [free_port(), free_port()]
    procs = [
        start_cli(
            ["consume", "blog", "--json"],
            env={**env, "PROJECTIONIST_METRICS_ADDRESS": f"127.0.0.1:{port}"},
        )
        for port in ports
    ]
    metrics = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        with api_server(pg_url, env=env) as api:

            def two_owners() -> bool:
                assert all(p.poll() is None for p in procs), "a consumer exited"
                if checkpoint_total(pg_url, SLOT) != len(before):
                    return False
                owners = {p["owner"] for p in _partitions(_entry(metrics[0]))}
                return None not in owners and len(owners) == 2

            wait_for("two consumers to own the partitions and catch up", two_owners, timeout_s=90)
            entry = _entry(api)  # the query API serves the same document
            for base in (api, metrics[1]):
                unknown = _get(f"{base}/status?projection=nope")
                assert unknown.status_code == 404, unknown.text
                assert unknown.json()["error"] == "unknown_projection"
            assert entry["paused"] is None
            assert entry["generations"][0]["state"] == "live"
            owners_before = {p["partition"]: p["owner"] for p in _partitions(entry)}
            assert len(set(owners_before.values())) == 2
            rebalances = _rebalances(metrics)

            paused = run_cli(["pause", "blog", "--reason", "schema migration"], env=env)
            assert paused.returncode == 0, paused.stderr[-3000:]
            assert "blog paused" in paused.stdout

            def held_everywhere() -> bool:
                readyz = [_get(f"{m}/readyz") for m in metrics]
                scraped = [_get(f"{m}/metrics").text for m in metrics]
                return all(
                    r.status_code == 200 and "paused by an operator" in r.text for r in readyz
                ) and all(f'projectionist_paused{{projection="{SLOT}"}} 1.0' in t for t in scraped)

            wait_for("both consumers to hold", held_everywhere, timeout_s=5, every_s=0.2)

            publish(bootstrap, topic, after)
            wait_for(
                "status to show the new events as lag",
                lambda: sum(p["lag"] for p in _partitions(_entry(api))) == len(after),
                timeout_s=30,
            )
            # a hold is the absence of progress: watch it over several control intervals
            window_end = time.monotonic() + 4
            while time.monotonic() < window_end:
                assert checkpoint_total(pg_url, SLOT) == len(before), "a paused consumer applied"
                time.sleep(0.25)
            entry = _entry(api)
            assert entry["paused"]["reason"] == "schema migration"
            assert entry["generations"][0]["state"] == "paused"
            assert {p["partition"]: p["owner"] for p in _partitions(entry)} == owners_before
            assert all(_get(f"{m}/healthz").status_code == 200 for m in metrics)
            table = run_cli(["status", "blog"], env={**env, "COLUMNS": "200"})
            assert table.returncode == 0, table.stderr[-3000:]
            assert "PAUSED since" in table.stdout
            assert "schema migration" in table.stdout
            for owner in owners_before.values():
                assert owner in table.stdout

            resumed = run_cli(["resume", "blog"], env=env)
            assert resumed.returncode == 0, resumed.stderr[-3000:]
            assert "blog resumed" in resumed.stdout
            wait_for(
                "the resumed consumers to catch up",
                lambda: checkpoint_total(pg_url, SLOT) == len(events),
                timeout_s=30,
            )
            entry = _entry(api)
            assert entry["paused"] is None
            assert sum(p["lag"] for p in _partitions(entry)) == 0
            assert _rebalances(metrics) == rebalances, "pause or resume cost the group a member"
            assert all(p.poll() is None for p in procs), "a consumer exited"
    finally:
        results = _stop(procs)
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    stats = [json_line(out) for _code, out, _err in results]
    assert sum(s["consumed"] for s in stats) == len(events), "an event was consumed twice"
    assert sum(s["skipped_offset"] for s in stats) == 0
    assert_blog_matches(pg_url, events)


def test_drain_shows_join_rate_and_lag_on_a_terminal_and_one_json_line(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str
) -> None:
    """`consume --drain --json` with stderr on a terminal: a progress line (join, then ev/s
    and lag left, ending at lag 0) on the terminal, and exactly one JSON line on stdout."""
    events = blog_events(posts=200, seed=191)
    publish(bootstrap, topic_env["PROJECTIONIST_BLOG_TOPIC"], events)
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": sqlite_url, "COLUMNS": "160"}
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [PROJECTIONIST, "consume", "blog", "--drain", "--json", "--timeout", "120"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    screen = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the process closed its end
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=150)
        reader.join(timeout=10)
    finally:
        os.close(controller)
    assert proc.returncode == 0, screen.decode(errors="replace")[-3000:]
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    summary = json.loads(lines[0])
    assert summary["consumed"] == len(events)
    assert summary["drain"] is True
    assert summary["seconds"] > 0
    shown = screen.decode(errors="replace")
    assert "blog: joining the consumer group" in shown
    assert "blog: draining 4 partitions" in shown
    assert "ev/s" in shown
    assert "lag 0" in shown, "the last progress line shows the drain caught up"
    assert f"{len(events)}/{len(events)}" in shown
