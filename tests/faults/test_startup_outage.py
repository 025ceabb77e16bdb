"""Database outages as operators see them: at start (retried, not a crash) and mid-run (lag)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import sqlalchemy as sa

from consumers.kafka.broker import EmbeddedBroker, free_port
from producers import blog_events
from tests.support import checkpoint_total, start_cli, unique, wait_for
from tests.support.broker import publish
from tests.support.oracle import assert_blog_matches
from tests.support.prometheus import http_get
from tests.support.proxy import TcpProxy
from tests.support.runners import running
from tests.support.settings import settings_for

AWAY_S = 4.0


def test_consumer_started_while_the_database_is_away_waits_unready_then_runs(
    bootstrap: str, fault_env: dict[str, str], pg_url: str
) -> None:
    """PostgreSQL unreachable at start: the process stays up, /healthz 200 and /readyz 503
    naming the database; once it answers, the consumer drains and turns ready."""
    events = blog_events(posts=60, seed=71)
    publish(bootstrap, fault_env["PROJECTIONIST_BLOG_TOPIC"], events)
    target = sa.engine.make_url(pg_url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432)).start()
    via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.cut()
    port = free_port()
    env = {
        **fault_env,
        "PROJECTIONIST_DATABASE_URL": via_proxy,
        "PROJECTIONIST_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "PROJECTIONIST_RETRY_INITIAL_S": "0.2",
        "PROJECTIONIST_RETRY_MAX_S": "1",
    }
    proc = start_cli(["consume", "blog"], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for("the probes to answer", lambda: http_get(f"{url}/healthz")[0] == 200, timeout_s=30)
        _status, body = wait_for(
            "/readyz to name the database",
            lambda: (
                (r := http_get(f"{url}/readyz"))[0] == 503 and "DatabaseUnavailable" in r[1] and r
            ),
            timeout_s=30,
        )
        assert "reading the active generation failed" in body, body
        # the outage lasts AWAY_S: the process stays up and alive all along
        away_until = time.monotonic() + AWAY_S
        while time.monotonic() < away_until:
            assert proc.poll() is None, "the consumer exited during a start-up outage"
            assert http_get(f"{url}/healthz")[0] == 200, "an outage is no reason to restart"
            time.sleep(0.5)
        proxy.restore()
        wait_for(
            "drained after the database came back",
            lambda: checkpoint_total(pg_url, "blog_v1") == len(events),
            timeout_s=90,
        )
        wait_for("/readyz 200", lambda: http_get(f"{url}/readyz")[0] == 200, timeout_s=30)
        assert_blog_matches(pg_url, events)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        proxy.stop()
    assert proc.returncode == 0, err[-3000:]
    assert "reading the active generation failed at start, retrying" in err


def _lag(url: str) -> float:
    _status, text = http_get(f"{url}/metrics")
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("projectionist_lag_events{")
    )


def test_lag_keeps_growing_while_the_database_is_away(bootstrap: str, pg_url: str) -> None:
    """During a mid-run database outage the paused consumer still reports the events piling
    up (high watermark asked of the broker), and catches up once the database is back."""
    topic = unique("lag-outage")
    first = blog_events(posts=20, seed=72)
    publish(bootstrap, topic, first)
    target = sa.engine.make_url(pg_url)
    with TcpProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
        via = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = settings_for(
            bootstrap, topic, via, retry_initial_s=0.2, retry_max_s=1.0, batch_max_messages=10
        )
        with running(settings) as (_runner, url):
            wait_for(
                "first events applied",
                lambda: checkpoint_total(pg_url, "blog_v1") == len(first),
                timeout_s=60,
            )
            wait_for("lag 0", lambda: _lag(url) == 0, timeout_s=30)
            proxy.cut()
            trigger = blog_events(posts=10, seed=73)
            publish(bootstrap, topic, trigger)  # fetched, then the commit fails: paused
            wait_for("not ready (retrying)", lambda: http_get(f"{url}/readyz")[0] == 503)
            wait_for("the fetched events in the lag", lambda: _lag(url) > 0, timeout_s=30)
            paused_lag = _lag(url)
            more = blog_events(posts=40, seed=74)
            for start in range(0, len(more), 5):  # produced while no partition is fetched
                publish(bootstrap, topic, more[start : start + 5])
            wait_for("the lag to grow while paused", lambda: _lag(url) > paused_lag, timeout_s=30)
            more = trigger + more
            proxy.restore()
            wait_for(
                "caught up after the outage",
                lambda: checkpoint_total(pg_url, "blog_v1") == len(first) + len(more),
                timeout_s=90,
            )
            wait_for("lag 0 again", lambda: _lag(url) == 0, timeout_s=30)


def test_relay_started_while_the_broker_is_away_waits_unready_then_relays(
    tmp_path: Path,
) -> None:
    """No broker at start: the relay stays up (alive, not ready) and turns ready once a
    broker answers at that address; SIGTERM then exits 0."""
    broker_port, metrics_port = free_port(), free_port()
    env = {
        "PROJECTIONIST_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        "PROJECTIONIST_DATABASE_URL": f"sqlite:///{tmp_path / 'commands.db'}",
        "PROJECTIONIST_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "PROJECTIONIST_RETRY_INITIAL_S": "0.2",
        "PROJECTIONIST_RETRY_MAX_S": "1",
        "PROJECTIONIST_LOG_FORMAT": "json",
    }
    proc = start_cli(["relay"], env=env)
    url = f"http://127.0.0.1:{metrics_port}"
    try:
        wait_for("the probes to answer", lambda: http_get(f"{url}/healthz")[0] == 200, timeout_s=30)
        # (its first attempt waits up to 30 s for metadata before it counts as failed)
        away_until = time.monotonic() + AWAY_S
        while time.monotonic() < away_until:
            assert proc.poll() is None, "the relay exited while the broker was away"
            assert http_get(f"{url}/healthz")[0] == 200
            assert http_get(f"{url}/readyz")[0] == 503
            time.sleep(0.5)
        with EmbeddedBroker(port=broker_port):
            wait_for("/readyz 200", lambda: http_get(f"{url}/readyz")[0] == 200, timeout_s=60)
            metrics = http_get(f"{url}/metrics")[1]
            assert 'projectionist_outbox_pending_events{service="blog"} 0.0' in metrics
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
