"""Broker away: the (memory-only) broker killed and restarted; the data-loss detector fires."""

from __future__ import annotations

import random
import time

from consumers.kafka.broker import EmbeddedBroker, free_port
from tests.faults.checker import Report, finish
from tests.faults.fleet import DRAIN, Fleet
from tests.faults.stream import build_stream, publish
from tests.support import checkpoint_total, run_cli, wait_for

AWAY_S = 4.0


def test_broker_restart_that_lost_history_stops_the_projection(
    seed: int, fault_env: dict[str, str], pg_url: str
) -> None:
    """Topic recreated with less history: exit 3 with an actionable error, no re-projection."""
    rng = random.Random(seed)
    first = build_stream(rng, posts=300, duplicates=0.03, late_versions=0.03)
    recreated = build_stream(rng, posts=40)
    port = free_port()
    topic = fault_env["PROJECTIONIST_BLOG_TOPIC"]
    env = {**fault_env, "PROJECTIONIST_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    fleet = Fleet(env)
    try:
        with EmbeddedBroker(port=port) as broker:
            published = publish(broker.bootstrap_servers, topic, first)
            consumer = fleet.start()
            wait_for(
                "everything applied",
                lambda: checkpoint_total(pg_url, "blog_v1") == len(published),
                timeout_s=60,
            )
            broker.kill()
        gone = time.monotonic()
        wait_for(
            f"{AWAY_S} s without a broker",
            lambda: time.monotonic() - gone >= AWAY_S or consumer.poll() is not None,
            timeout_s=AWAY_S + 5,
        )
        assert consumer.poll() is None, "the consumer died while the broker was away"
        with EmbeddedBroker(port=port) as broker:
            republished = publish(broker.bootstrap_servers, topic, recreated)
            wait_for("the consumer to stop", lambda: consumer.poll() is not None, timeout_s=90)
            _out, err = consumer.communicate()
            fleet.running.remove(consumer)
            assert consumer.returncode == 3, f"exit {consumer.returncode}: {err[-3000:]}"
            assert "data loss detected" in err, err[-3000:]
            assert "stored checkpoint is" in err, err[-3000:]
            assert "Rebuild the projection" in err, err[-3000:]
            # a fresh start sees the same mismatch: loud every time, never silent
            again = run_cli(DRAIN, env=env)
            assert again.returncode == 3, again.stderr[-3000:]
            assert checkpoint_total(pg_url, "blog_v1") == len(published), "checkpoints moved"
            report = Report(
                scenario="broker-away",
                seed=seed,
                events=len(published),
                poison=0,
                faults={
                    "broker_kills": 1,
                    "away_s": int(AWAY_S),
                    "events_after_recreate": len(republished),
                    "exit_code": consumer.returncode,
                },
            )
            # the read model still equals the fold of the first history: nothing re-projected
            finish(
                report,
                url=pg_url,
                bootstrap=broker.bootstrap_servers,
                topic=topic,
                published=published,
            )
    finally:
        fleet.kill_all()
