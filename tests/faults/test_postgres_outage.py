"""PostgreSQL away: backends terminated repeatedly, then unreachable for over 10 s mid-stream."""

from __future__ import annotations

import random
import threading
import time

import sqlalchemy as sa

from consumers.app import build_runner
from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.stats import RunStats
from tests.faults.checker import Report, expected, finish
from tests.faults.stream import build_stream, publish
from tests.support import checkpoint_total, load_test_settings, wait_for
from tests.support.proxy import TcpProxy

OUTAGE_S = 11.0
TERMINATION_ROUNDS = 10


def _terminate_backends(admin: sa.Engine, database: str) -> int:
    """pg_terminate_backend on the test database's own backends only (never the server)."""
    with admin.connect() as conn:
        return len(
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).all()
        )


def test_postgres_outage_pauses_retries_and_loses_nothing(
    seed: int, bootstrap: str, fault_env: dict[str, str], pg_url: str
) -> None:
    """Terminated backends and an 11 s outage: retries, not-ready meanwhile, then the oracle."""
    rng = random.Random(seed)
    items = build_stream(rng, posts=500, poison=10, duplicates=0.03, late_versions=0.03)
    third = len(items) // 3
    phases = [items[:third], items[third : 2 * third], items[2 * third :]]
    topic = fault_env["PROJECTIONIST_BLOG_TOPIC"]
    target = sa.engine.make_url(pg_url)
    admin = sa.create_engine(target, isolation_level="AUTOCOMMIT")
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432)).start()
    via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = load_test_settings(
        fault_env,
        database_url=via_proxy,
        batch_max_messages=20,
        retry_initial_s=0.1,
        retry_max_s=1.0,
    )
    runner: ProjectionRunner = build_runner(settings, "blog")
    outcome: list[RunStats | BaseException] = []

    def run() -> None:
        try:
            outcome.append(runner.run_forever())
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    published = []
    terminated = 0
    try:
        thread.start()
        started = time.monotonic()
        published += publish(bootstrap, topic, phases[0])
        wait_for("phase 1 applied", lambda: checkpoint_total(pg_url, "blog_v1") == len(published))

        # phase 2: every backend of the test database terminated, again and again
        published += publish(bootstrap, topic, phases[1])
        deadline = time.monotonic() + 60
        rounds = 0
        while (now := checkpoint_total(pg_url, "blog_v1")) < len(published):
            assert time.monotonic() < deadline, "phase 2 not applied within 60 s"
            if rounds < TERMINATION_ROUNDS:
                rounds += 1
                terminated += _terminate_backends(admin, target.database or "")
            # let a batch or two through before the next round, so the stream moves on
            pace = time.monotonic() + rng.uniform(0.1, 0.4)
            while time.monotonic() < pace and checkpoint_total(pg_url, "blog_v1") == now:
                time.sleep(0.02)
        assert terminated >= 3, f"only {terminated} backends terminated: phase 2 ended too soon"

        print(f"phase 2 done after {time.monotonic() - started:.1f}s")
        # phase 3: the database unreachable for more than 10 s
        proxy.cut()
        cut_at = time.monotonic()
        done = checkpoint_total(pg_url, "blog_v1")
        published += publish(bootstrap, topic, phases[2])
        wait_for(
            "not ready while the database is away",
            lambda: not runner.snapshot().ready,
            timeout_s=30,
        )
        wait_for(
            f"{OUTAGE_S} s of outage",
            lambda: time.monotonic() - cut_at >= OUTAGE_S or not thread.is_alive(),
            timeout_s=OUTAGE_S + 5,
        )
        assert thread.is_alive(), f"the consumer gave up during the outage: {outcome}"
        assert not runner.snapshot().ready
        assert checkpoint_total(pg_url, "blog_v1") == done, "progress while unreachable?"
        proxy.restore()
        print(f"{time.monotonic() - cut_at:.1f}s after the cut: restored")
        wait_for(
            "everything applied after the outage",
            lambda: checkpoint_total(pg_url, "blog_v1") == len(published),
            timeout_s=60,
        )
        wait_for("ready again", lambda: runner.snapshot().ready, timeout_s=30)
        print(f"{time.monotonic() - cut_at:.1f}s after the cut: caught up")
        cuts = proxy.cuts
    finally:
        runner.stop.set()
        thread.join(timeout=30)
        proxy.stop()
        admin.dispose()
    stats = outcome[0]
    assert isinstance(stats, RunStats), stats
    want = expected(published, "skip", dedup=False)  # the shipped settings: no event-id dedup
    outcomes = [want.outcome[p.position] for p in published]
    assert stats.retries >= 2
    report = Report(
        scenario="postgres-outage",
        seed=seed,
        events=len(published),
        poison=outcomes.count("dead"),
        faults={
            "backends_terminated": terminated,
            "unreachable_s": int(OUTAGE_S),
            "proxy_cuts": cuts,
        },
    )
    finish(
        report,
        url=pg_url,
        bootstrap=bootstrap,
        topic=topic,
        published=published,
        stats=[stats.as_dict()],
        exact={
            "consumed": len(published),
            "skipped_offset": 0,
            "dead_lettered": outcomes.count("dead"),
            "skipped_event_id": outcomes.count("dup-id"),
        },
    )
