"""Probes under faults: a hanging apply fails liveness; a database outage fails readiness only."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from producers import blog_events
from tests.support import checkpoint_total, unique, wait_for
from tests.support.broker import publish
from tests.support.oracle import blog_actual, blog_oracle
from tests.support.prometheus import http_get
from tests.support.proxy import tcp_proxy
from tests.support.runners import SLOT, FreezableConsumer, UnassignedConsumer, running
from tests.support.settings import settings_for


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


def test_consumer_that_stops_delivering_while_behind_fails_liveness_then_recovers(
    bootstrap: str, sqlite_url: str
) -> None:
    """Assigned, lag > 0 (fetch responses still arrive), polls yield nothing, no retries:
    /healthz reports the silent stall after stall_timeout_s, and recovers once messages flow."""
    topic = unique("blog")
    first, more = blog_events(posts=20, seed=5), blog_events(posts=10, seed=6)
    publish(bootstrap, topic, first)
    stall_s = 3.0
    settings = settings_for(bootstrap, topic, sqlite_url, stall_timeout_s=stall_s)
    consumers: list[FreezableConsumer] = []

    def factory(conf: dict[str, Any]) -> FreezableConsumer:
        consumers.append(FreezableConsumer(conf))
        return consumers[-1]

    with running(settings, consumer_factory=factory) as (runner, url):
        wait_for(
            "first events applied and /readyz 200",
            lambda: (
                checkpoint_total(sqlite_url, SLOT) == len(first)
                and http_get(f"{url}/readyz")[0] == 200
            ),
            timeout_s=60,
        )
        consumers[0].freeze()
        publish(bootstrap, topic, more)
        wait_for(
            "lag to show in /metrics while nothing is delivered",
            lambda: sum(runner.snapshot().lag.values()) > 0,
            timeout_s=30,
        )
        behind_at = time.monotonic()
        _status, body = wait_for(
            "/healthz to report the stall",
            lambda: (r := http_get(f"{url}/healthz"))[0] == 503 and r,
            timeout_s=stall_s + 10,
            every_s=0.1,
        )
        assert time.monotonic() - behind_at >= stall_s - 1.0, "failed before the stall timeout"
        assert "stalled:" in body, body
        assert "events behind and no checkpoint progress" in body
        assert runner.stats.retries == 0
        consumers[0].thaw()
        wait_for("/healthz to recover", lambda: http_get(f"{url}/healthz")[0] == 200, timeout_s=20)
        wait_for(
            "the rest to be applied",
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


def test_a_group_that_assigns_nothing_while_events_wait_is_wedged(
    bootstrap: str, sqlite_url: str
) -> None:
    """No partitions past the readiness grace, events waiting, no checkpoint moving:
    /readyz says wedged and projectionist_wedged is 1; once the group assigns, both clear
    and every event is applied."""
    topic = unique("blog")
    events = blog_events(posts=20, seed=9)
    publish(bootstrap, topic, events)
    settings = settings_for(bootstrap, topic, sqlite_url, readiness_grace_s=1.0)
    consumers: list[UnassignedConsumer] = []

    def factory(conf: dict[str, Any]) -> UnassignedConsumer:
        consumers.append(UnassignedConsumer(conf))
        return consumers[-1]

    with running(settings, consumer_factory=factory) as (_runner, url):
        _status, body = wait_for(
            "/readyz to say wedged",
            lambda: (r := http_get(f"{url}/readyz"))[0] == 503 and "wedged" in r[1] and r,
            timeout_s=30,
        )
        # at least one per partition: the embedded broker answers "latest" per batch
        waiting = int(body.split(" events wait")[0].rsplit(" ", 1)[1])
        assert 0 < waiting <= len(events), body
        metrics = http_get(f"{url}/metrics")[1]
        assert f'projectionist_wedged{{projection="{SLOT}"}} 1.0' in metrics
        assert http_get(f"{url}/healthz")[0] == 200, "a wedge is not cured by a restart loop"
        consumers[0].let_in()
        wait_for(
            "every event applied and /readyz 200",
            lambda: (
                checkpoint_total(sqlite_url, SLOT) == len(events)
                and http_get(f"{url}/readyz")[0] == 200
            ),
            timeout_s=60,
        )
        metrics = http_get(f"{url}/metrics")[1]
        assert f'projectionist_wedged{{projection="{SLOT}"}} 0.0' in metrics
    assert blog_actual(sqlite_url) == blog_oracle(events)
