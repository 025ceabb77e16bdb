"""Dead letters on a real broker: refused ones never block, each origin once, one topic per
projection, and the `dlq` commands (list --letters, show, unpark, skip, --reason)."""

from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Producer

from consumers.app import build_runner
from consumers.kafka.config import producer_config
from consumers.settings.models import Settings
from producers import SampleEvent, blog_events
from schemas.errors import BrokerUnavailable
from schemas.events import BLOG_POST_UPDATED
from tests.support import json_line, run_cli, unique
from tests.support.broker import publish, publish_poison
from tests.support.fakes import ListSink
from tests.support.oracle import assert_blog_matches

DRAIN = ["--drain", "--json", "--timeout", "60"]


def _json(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = run_cli([*args, "--json"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def _consume(name: str, env: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    done = run_cli(["consume", name, *DRAIN], env=env, timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 60, "--drain --timeout 60 must be honoured"
    return json_line(done.stdout)


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    conf = producer_config(Settings(bootstrap_servers=bootstrap).kafka)
    producer = Producer({**conf, "message.max.bytes": 4_000_000})
    producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_a_refused_letter_is_kept_and_rebuild_sends_nothing_again(
    bootstrap: str, topic_env: dict[str, str], pg_url: str
) -> None:
    """A 2 MB poison the dead-letter producer refuses is kept in the database, the good events
    around it are applied within --timeout; `dlq list`, `show` and `status` count three
    distinct letters (one refused); a rebuild sends no letter again."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": pg_url}
    events = blog_events(posts=60, seed=21)
    huge = random.Random(5).randbytes(2_000_000)
    publish(bootstrap, topic, events[:100])
    _produce(bootstrap, topic, b"huge", huge)
    publish_poison(bootstrap, topic, 2)
    publish(bootstrap, topic, events[100:])

    summary = _consume("blog", env)
    assert summary["dead_lettered"] == 3
    assert_blog_matches(pg_url, events)

    listed = _json(["dlq", "list", "blog", "--letters"], env)
    assert (listed["distinct"], listed["refused"], listed["messages"]) == (3, 1, 2)
    (refused,) = [row for row in listed["letters"] if row["where"] == "refused"]
    assert (refused["key"], refused["reason"]) == ("huge", "poison")
    assert refused["error_class"]
    assert refused["time"]
    shown = run_cli(
        [
            "dlq",
            "show",
            "blog",
            "--partition",
            str(refused["partition"]),
            "--offset",
            str(refused["offset"]),
        ],
        env=env,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    detail = json.loads(shown.stdout)
    assert "MSG_SIZE_TOO_LARGE" in detail["dead_letter"]
    assert detail["value_size"] == len(huge)
    assert detail["value_sha256"] == hashlib.sha256(huge).hexdigest()
    (status,) = _json(["status", "blog"], env)["projections"]
    assert status["dead_letters"] == {"distinct": 3, "refused": 1, "messages": 2}

    rebuilt = _json(["rebuild", "blog"], env)
    assert rebuilt["swapped"], rebuilt
    assert_blog_matches(pg_url, events, generation=rebuilt["generation"])
    again = _json(["dlq", "list", "blog"], env)
    assert (again["distinct"], again["refused"], again["messages"]) == (3, 1, 2), again

    wrong = run_cli(["dlq", "replay", "blog", "--reason", "foo"], env=env)
    assert wrong.returncode == 2
    assert "unknown --reason 'foo'; known: parked, poison" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_purge_touches_only_its_own_projection(
    bootstrap: str, topic_env: dict[str, str], pg_url: str
) -> None:
    """`orders` and `notifications` read one topic; each has its own dead-letter topic and
    purging one leaves the other's letters."""
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": pg_url}
    assert run_cli(["topics"], env=env).returncode == 0
    publish_poison(bootstrap, topic_env["PROJECTIONIST_ORDERS_TOPIC"], 3)
    for name in ("orders", "notifications"):
        assert _consume(name, env)["dead_lettered"] == 3
        assert _json(["dlq", "list", name], env)["messages"] == 3
    purged = run_cli(["dlq", "purge", "orders", "--yes"], env=env)
    assert purged.returncode == 0, purged.stderr[-2000:]
    assert _json(["dlq", "list", "orders"], env)["messages"] == 0
    assert _json(["dlq", "list", "notifications"], env)["messages"] == 3


def _edit(post: SampleEvent, version: int) -> SampleEvent:
    record = dict(post.record, version=version, title=f"rev {version}")
    record["event_id"] = f"00000000-0000-4000-8000-{version:012d}"
    record["updated_at"] = post.record["updated_at"] + timedelta(hours=version)
    return SampleEvent("blog", BLOG_POST_UPDATED, post.key, record)


def test_unpark_and_skip_a_key(bootstrap: str, topic_env: dict[str, str], pg_url: str) -> None:
    """park-key: after a poison of a post, its next edit is parked; `dlq unpark` lets the
    following edits apply; `dlq skip` makes a later replay of the key apply nothing."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": pg_url,
        "PROJECTIONIST_DEAD_LETTER_MODE": "park-key",
    }
    first = blog_events(posts=1, edits_per_post=0, seed=3)[0]
    key = first.key.encode()
    publish(bootstrap, topic, [first])
    _produce(bootstrap, topic, key, b"\x00not avro")
    publish(bootstrap, topic, [_edit(first, 2)])
    summary = _consume("blog", env)
    assert (summary["dead_lettered"], summary["parked"]) == (2, 1)

    unparked = _json(["dlq", "unpark", "blog", first.key], env)
    assert unparked["unparked"] == 1
    publish(bootstrap, topic, [_edit(first, 3)])
    assert _consume("blog", env)["parked"] == 0
    assert_blog_matches(pg_url, [first, _edit(first, 3)])

    skipped = _json(["dlq", "skip", "blog", first.key], env)
    assert (skipped["skipped"], skipped["unparked"]) == (2, 0)
    replayed = _json(["dlq", "replay", "blog", "--key", first.key], env)
    # the parked edit was claimed by skip; the poison itself cannot be decoded anyway
    assert (replayed["replayed"], replayed["already"]) == (0, 1), replayed
    assert replayed["still_poison"] == {"UndecodableError": 1}, replayed
    assert_blog_matches(pg_url, [first, _edit(first, 3)])
    not_parked = run_cli(["dlq", "unpark", "blog", "no-such-key"], env=env)
    assert not_parked.returncode == 0
    assert "it was not parked" in not_parked.stdout


def test_drain_timeout_is_honoured_while_dead_letters_cannot_be_sent(
    bootstrap: str, sqlite_url: str
) -> None:
    """A dead-letter topic that stays away is an outage (retried), but `--drain --timeout`
    still ends the run in time, with nothing committed past the poison."""
    topic = unique("blog-dlq-away")
    settings = Settings(
        bootstrap_servers=bootstrap,
        database_url=sqlite_url,
        blog_topic=topic,
        group_prefix=unique("away"),
        assignment_strategy="range",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        retry_max_s=0.5,
    )
    publish(bootstrap, topic, blog_events(posts=5, seed=8))
    publish_poison(bootstrap, topic, 1)
    runner = build_runner(settings, "blog")
    runner._processor._tx.dead_letters = ListSink(fail_times=10**6)  # the broker never acks
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="drain did not catch up"):
        runner.drain(timeout_s=4)
    assert time.monotonic() - started < 15
    assert runner.stats.retries > 0
