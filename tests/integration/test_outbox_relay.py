"""The transactional outbox and its relay against a real broker and real databases."""

from __future__ import annotations

import random
import signal
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.settings.models import Settings
from producers import BlogService, EventPublisher, Outbox, OutboxEvent, OutboxRelay, RelaySettings
from projections import database_errors
from schemas import AvroSerde, SchemaCatalog
from tests.support import json_line, run_cli, start_cli, start_module, wait_for
from tests.support.broker import read_topic
from tests.support.commands import command_side, outbox_events, unpublished
from tests.support.oracle import assert_blog_matches

CONSUME = ["consume", "blog", "--drain", "--json", "--timeout", "120"]


def _write_posts(blog: BlogService, *, posts: int, seed: int) -> None:
    """Create posts, edit them a few times (interleaved), delete some."""
    rng = random.Random(seed)
    live = [
        blog.create(title=f"post {n}", tags=[f"tag{rng.randrange(12)}"], author="ann").aggregate_id
        for n in range(posts)
    ]
    for step in range(posts * 2):
        post_id = rng.choice(live)
        blog.update(
            post_id,
            title=f"edit {step}",
            tags=[f"tag{rng.randrange(12)}" for _ in range(rng.randint(1, 3))],
        )
    for post_id in rng.sample(live, k=posts // 8):
        blog.delete(post_id)


class _LineReader:
    """Collects a pipe's lines in a thread, so a test can wait for one with a deadline."""

    def __init__(self, pipe: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: Any) -> None:
        for line in pipe:
            self.lines.append(line)

    def seen(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def test_relay_killed_between_publish_and_mark_republishes_and_consumer_skips(
    topic_env: dict[str, str], tmp_path: Path, sqlite_url: str
) -> None:
    """SIGKILL after the broker ack, before the mark: the round is published twice, the
    duplicates are counted as skipped by the consumer, and the read model equals the oracle."""
    commands_url = f"sqlite:///{tmp_path / 'commands.db'}"
    with command_side(commands_url, blog_topic=topic_env["PROJECTIONIST_BLOG_TOPIC"]) as cs:
        _write_posts(cs.blog, posts=40, seed=11)
    total = len(outbox_events(commands_url))
    crash_round = 60
    env = {
        **topic_env,
        "PROJECTIONIST_COMMAND_DATABASE_URL": commands_url,
        "PROJECTIONIST_DATABASE_URL": sqlite_url,
        "PROJECTIONIST_RELAY_BATCH_SIZE": str(crash_round),
    }

    relay = start_module("tests.integration.paused_relay", env=env)  # pauses after the ack
    stderr = _LineReader(relay.stderr)
    wait_for(
        "the relay to pause after the broker ack",
        lambda: relay.poll() is not None or stderr.seen("relay.paused_after_ack"),
        timeout_s=60,
    )
    assert relay.poll() is None, f"relay ended early: {''.join(stderr.lines)[-3000:]}"
    relay.send_signal(signal.SIGKILL)
    relay.communicate(timeout=10)
    assert unpublished(commands_url) == total, "the killed round must not be marked published"

    first = run_cli(CONSUME, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json_line(first.stdout)["consumed"] == crash_round

    again = run_cli(["relay", "--drain", "--json"], env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json_line_relay(again.stdout)["published"] == total
    assert unpublished(commands_url) == 0

    second = run_cli(CONSUME, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    stats = json_line(second.stdout)
    assert stats["consumed"] == total, "the topic holds every event, the killed round twice"
    assert stats["stale"] + stats["skipped_event_id"] == crash_round, (
        f"duplicates not skipped: {stats}"
    )
    assert stats["applied"] == total - crash_round
    assert_blog_matches(sqlite_url, outbox_events(commands_url))


def json_line_relay(output: str) -> dict[str, Any]:
    import json

    for line in reversed(output.strip().splitlines()):
        if line.startswith('{"relay"'):
            parsed: dict[str, Any] = json.loads(line)["relay"]
            return parsed
    raise AssertionError(f"no relay summary in output:\n{output[-2000:]}")


def test_two_relays_on_postgres_publish_each_row_once_in_aggregate_order(
    bootstrap: str, topic_env: dict[str, str], pg_url: str
) -> None:
    """Two relay processes share one PostgreSQL outbox (FOR UPDATE SKIP LOCKED): every row
    reaches the topic exactly once, and each post's versions arrive in order."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    env = {
        **topic_env,
        "PROJECTIONIST_COMMAND_DATABASE_URL": pg_url,
        "PROJECTIONIST_RELAY_BATCH_SIZE": "5",
        "PROJECTIONIST_RELAY_POLL_INTERVAL_S": "0.05",
    }
    with command_side(pg_url, blog_topic=topic) as cs:
        _write_posts(cs.blog, posts=30, seed=3)  # a backlog both replicas race for
        relays = [start_cli(["relay", "--json"], env=env) for _ in range(2)]
        try:
            _write_posts(cs.blog, posts=30, seed=4)  # and rows arriving while they run
            events = outbox_events(pg_url)
            wait_for("the outbox to be published", lambda: unpublished(pg_url) == 0, timeout_s=90)
        finally:
            for proc in relays:
                proc.send_signal(signal.SIGTERM)
            outputs = [proc.communicate(timeout=30) for proc in relays]
    for proc, (_out, err) in zip(relays, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    published = [json_line_relay(out)["published"] for out, _ in outputs]
    assert sum(published) == len(events), f"rows published {published} != {len(events)} rows"
    assert all(n > 0 for n in published), f"one replica published nothing: {published}"

    records = read_topic(bootstrap, topic, expected=len(events))
    assert len(records) == len(events), "a row was published twice (or lost)"
    assert {r.headers["event_id"] for r in records} == {str(e.record["event_id"]) for e in events}
    serde = AvroSerde(SchemaCatalog.load())
    versions: dict[str, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        versions[r.key].append(serde.decode(r.value).record["version"])
    out_of_order = {k: v for k, v in versions.items() if v != sorted(v)}
    assert not out_of_order, f"versions out of order: {dict(list(out_of_order.items())[:3])}"
    expected = defaultdict(list)
    for e in events:
        expected[e.key].append(e.record["version"])
    assert versions == expected


class _CrashBeforeCommit(Outbox):
    def append(self, conn: sa.Connection, **kwargs: Any) -> OutboxEvent:
        event = super().append(conn, **kwargs)
        if kwargs["record"].get("title") == "doomed":
            raise RuntimeError("crash before commit")
        return event


def test_rolled_back_command_never_reaches_kafka(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str
) -> None:
    """A command whose transaction rolls back after writing its outbox row publishes nothing."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    settings = Settings(bootstrap_servers=bootstrap)
    ensure_topics(client_config(settings.kafka), [topic], partitions=2)
    with command_side(sqlite_url, blog_topic=topic, outbox_class=_CrashBeforeCommit) as cs:
        with pytest.raises(RuntimeError, match="before commit"):
            cs.blog.create(title="doomed", author="ann")
        kept = cs.blog.create(title="kept", author="ann")
        publisher = EventPublisher(producer_config(settings.kafka), serde=cs.outbox.serde)
        stats = OutboxRelay(
            cs.engine,
            publisher=publisher,
            database_errors=database_errors,
            tables=cs.tables,
            settings=RelaySettings(),
        ).drain(timeout_s=60)
        publisher.close()
    assert stats.published == 1
    records = read_topic(bootstrap, topic, expected=1)
    assert [r.headers["event_id"] for r in records] == [kept.event_id]


def test_relay_help_and_bad_settings(topic_env: dict[str, str]) -> None:
    """`relay` explains itself; a bad batch size is one clear line and exit 2."""
    ok = run_cli(["relay", "--help"], env={})
    assert ok.returncode == 0
    assert "outbox" in ok.stdout
    bad = run_cli(
        ["relay", "--drain"], env={**topic_env, "PROJECTIONIST_RELAY_BATCH_SIZE": "0"}, timeout_s=30
    )
    assert bad.returncode == 2, bad.stderr
    assert "relay_batch_size" in bad.stderr
    assert "Traceback" not in bad.stderr
