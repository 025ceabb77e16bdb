"""Metrics, probes and a real Prometheus against a real broker and real databases."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from confluent_kafka import Producer

from consumers._kafka import producer_config
from consumers._settings import Settings, load_settings
from consumers.observability import observed_runner
from consumers.runner import ProjectionRunner, StopSignal
from producers import blog_events, with_noise
from tests.integration.helpers import publish
from tests.integration.observability_support import (
    PrometheusServer,
    free_port,
    http_get,
    tcp_proxy,
)
from tests.oracle import blog_actual, blog_oracle
from tests.support import (
    TEST_ENV,
    checkpoint_total,
    json_line,
    run_cli,
    start_cli,
    unique,
    wait_for,
)

SLOT = "blog_v1"


def publish_poison(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(producer_config(Settings(bootstrap_servers=bootstrap)))
    for i in range(count):
        producer.produce(topic, key=f"poison-{i}".encode(), value=b"\x00not avro at all")
    assert producer.flush(30) == 0


def settings_for(bootstrap: str, topic: str, db_url: str, **overrides: Any) -> Settings:
    env = {k.removeprefix("PROJECTIONIST_").lower(): v for k, v in TEST_ENV.items()}
    return load_settings(
        **env,
        bootstrap_servers=bootstrap,
        blog_topic=topic,
        group_prefix=unique("obs"),
        database_url=db_url,
        metrics_address=f"127.0.0.1:{free_port()}",
        **overrides,
    )


@contextmanager
def running(settings: Settings) -> Iterator[tuple[ProjectionRunner, str]]:
    """An in-process runner on its own thread, with its endpoints served; stopped on exit."""
    stop = StopSignal()
    errors: list[BaseException] = []
    with observed_runner(settings, "blog", stop=stop) as runner:

        def loop() -> None:
            try:
                runner.run_forever()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
                errors.append(exc)

        thread = threading.Thread(target=loop, name="runner", daemon=True)
        thread.start()
        try:
            yield runner, f"http://{settings.metrics_address}"
        finally:
            stop.set()
            thread.join(timeout=60)
            runner.processor.engine.dispose()
    assert not thread.is_alive(), "runner did not stop"
    if errors:
        raise errors[0]


def test_prometheus_scrapes_applied_events_and_lag(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    """A real Prometheus scrapes `consume`; its counters reconcile with the run's books and oracle."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    events = with_noise(blog_events(posts=60, seed=11), duplicate_ratio=0.1, seed=11)
    publish(bootstrap, topic, events)
    publish_poison(bootstrap, topic, 3)
    total = len(events) + 3
    port = free_port()
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": sqlite_url,
        "PROJECTIONIST_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "PROJECTIONIST_KAFKA_STATISTICS_INTERVAL_MS": "1000",
    }
    sel = f'{{projection="{SLOT}"}}'
    with PrometheusServer(tmp_path, targets=[f"127.0.0.1:{port}"]) as prom:
        proc = start_cli(["consume", "blog", "--json"], env=env)
        try:
            wait_for(
                "every message checkpointed",
                lambda: proc.poll() is not None or checkpoint_total(sqlite_url, SLOT) == total,
                timeout_s=90,
            )
            assert proc.poll() is None, "consumer exited early"

            def scraped_all() -> bool:
                consumed = prom.query(f"projectionist_events_consumed_total{sel}")
                lag = prom.query(f"projectionist_lag_events{sel}")
                return list(consumed.values()) == [total] and len(lag) == 4

            wait_for(
                "Prometheus to scrape the caught-up consumer",
                scraped_all,
                timeout_s=60,
                every_s=0.5,
            )
            applied = prom.query(f"projectionist_events_applied_total{sel}")
            skipped = prom.query(f"sum(projectionist_events_skipped_total{sel})")
            dead = prom.query(f"projectionist_events_dead_lettered_total{sel}")
            lag = prom.query(f"projectionist_lag_events{sel}")
            high = prom.query(f"sum(projectionist_high_watermark_offset{sel})")
            received = prom.query(f"sum(projectionist_events_received_total{sel})")
            up = prom.query('up{job="projectionist"}')
            ready = prom.query(f"projectionist_ready{sel}")
            brokers = prom.query(f"projectionist_kafka_brokers_up{sel}")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    stats = json_line(out)
    assert list(up.values()) == [1.0]
    assert list(lag.values()) == [0.0] * 4, lag
    assert list(high.values()) == [total], "high watermarks sum to every message published"
    assert list(dead.values()) == [3.0] == [stats["dead_lettered"]]
    assert list(applied.values()) == [stats["applied"]]
    assert stats["consumed"] == total
    assert total == sum(applied.values()) + sum(skipped.values()) + sum(dead.values())
    assert list(received.values()) == [len(events)], "every decodable event reached apply"
    assert list(ready.values()) == [1.0]
    assert list(brokers.values()) == [1.0], "librdkafka statistics feed client gauges"
    assert blog_actual(sqlite_url) == blog_oracle(events)


def test_blocked_apply_fails_liveness_within_stall_timeout_then_recovers(
    bootstrap: str, sqlite_url: str
) -> None:
    """An apply that hangs (injected) turns /healthz 503 after stall_timeout_s; release → 200."""
    topic = unique("blog")
    first = blog_events(posts=20, seed=3)
    publish(bootstrap, topic, first)
    stall_s = 3.0
    settings = settings_for(bootstrap, topic, sqlite_url, stall_timeout_s=stall_s)
    gate, entered = threading.Event(), threading.Event()
    gate.set()
    with running(settings) as (runner, url):
        projection = runner.processor.projection
        original = projection.apply

        def apply(conn: sa.Connection, events: Any) -> Any:
            if not gate.is_set():
                entered.set()
                gate.wait(120)
            return original(conn, events)

        projection.apply = apply  # type: ignore[method-assign]
        wait_for(
            "first events applied and /readyz 200",
            lambda: (
                checkpoint_total(sqlite_url, SLOT) == len(first)
                and http_get(f"{url}/readyz")[0] == 200
            ),
            timeout_s=60,
        )
        assert http_get(f"{url}/healthz")[0] == 200
        gate.clear()
        more = blog_events(posts=10, seed=4)
        publish(bootstrap, topic, more)
        wait_for("apply to block", entered.is_set, timeout_s=30)
        blocked_at = time.monotonic()
        _status, body = wait_for(
            "/healthz to fail",
            lambda: (r := http_get(f"{url}/healthz"))[0] == 503 and r,
            timeout_s=stall_s + 10,
            every_s=0.1,
        )
        took = time.monotonic() - blocked_at
        assert took >= stall_s - 1.0, f"/healthz failed after {took:.1f}s, before the stall timeout"
        assert "has not polled" in body or "stalled" in body, body
        metrics = http_get(f"{url}/metrics")[1]
        assert f'projectionist_stalled{{projection="{SLOT}"}} 1.0' in metrics
        gate.set()
        wait_for("/healthz to recover", lambda: http_get(f"{url}/healthz")[0] == 200, timeout_s=20)
        wait_for(
            "the blocked batch to commit",
            lambda: checkpoint_total(sqlite_url, SLOT) == len(first) + len(more),
            timeout_s=30,
        )
    assert blog_actual(sqlite_url) == blog_oracle(first + more)


def test_readiness_follows_a_database_outage_and_liveness_does_not(
    bootstrap: str, pg_url: str
) -> None:
    """PostgreSQL outage simulated by cutting a loopback TCP proxy in front of the shared server:
    /readyz fails and recovers, /healthz stays 200 throughout (retries are not a stall)."""
    topic = unique("blog")
    first, second = blog_events(posts=20, seed=7), blog_events(posts=15, seed=8)
    publish(bootstrap, topic, first)
    real = sa.engine.make_url(pg_url)
    with tcp_proxy(real.host or "127.0.0.1", real.port or 5432) as proxy:
        via_proxy = real.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        settings = settings_for(
            bootstrap, topic, via_proxy, stall_timeout_s=3.0, readiness_grace_s=1.0, retry_max_s=1.0
        )
        with running(settings) as (runner, url):
            wait_for(
                "first events applied and /readyz 200",
                lambda: (
                    checkpoint_total(pg_url, SLOT) == len(first)
                    and http_get(f"{url}/readyz")[0] == 200
                ),
                timeout_s=60,
            )
            proxy.cut()
            _status, body = wait_for(
                "/readyz to fail while idle",
                lambda: (r := http_get(f"{url}/readyz"))[0] == 503 and r,
                timeout_s=20,
            )
            assert "database unreachable" in body, body
            publish(bootstrap, topic, second)
            wait_for("the loop to retry", lambda: runner.stats.retries >= 2, timeout_s=30)
            held_since = time.monotonic()
            liveness: list[int] = []

            def liveness_held_past_stall_timeout() -> bool:
                liveness.append(http_get(f"{url}/healthz")[0])
                assert liveness[-1] == 200, "a database outage must never fail liveness"
                assert http_get(f"{url}/readyz")[0] == 503
                return time.monotonic() - held_since > 3.0 * 1.5

            wait_for("an outage longer than the stall timeout", liveness_held_past_stall_timeout)
            assert checkpoint_total(pg_url, SLOT) == len(first), "nothing commits during the outage"
            proxy.restore()
            wait_for(
                "/readyz to recover", lambda: http_get(f"{url}/readyz")[0] == 200, timeout_s=30
            )
            wait_for(
                "the retried batch to commit",
                lambda: checkpoint_total(pg_url, SLOT) == len(first) + len(second),
                timeout_s=30,
            )
            assert http_get(f"{url}/healthz")[0] == 200
    assert blog_actual(pg_url) == blog_oracle(first + second)


def test_bad_metrics_address_is_one_line_and_exit_2() -> None:
    """A malformed PROJECTIONIST_METRICS_ADDRESS fails before Kafka is touched: one line, exit 2."""
    result = run_cli(
        ["consume", "blog", "-b", "127.0.0.1:1"],
        env={"PROJECTIONIST_METRICS_ADDRESS": "localhost", "PROJECTIONIST_LOG_FORMAT": "json"},
        timeout_s=60,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "metrics address 'localhost' is not host:port" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
