"""The relay rides out a broker restart (memory lost, idempotent producer id forgotten)."""

from __future__ import annotations

import threading

from consumers.kafka.admin import ensure_topics
from consumers.kafka.broker import EmbeddedBroker
from consumers.kafka.config import client_config, producer_config
from consumers.settings.models import Settings
from producers import EventPublisher, OutboxRelay, RelaySettings, pending_count
from projections import database_errors
from tests.support import wait_for
from tests.support.broker import read_topic
from tests.support.commands import command_side


def test_relay_retries_through_a_broker_restart(sqlite_url: str) -> None:
    """Broker killed mid-stream: rounds fail and roll back (nothing marked), the relay backs
    off and retries on a fresh producer, and publishes everything once the broker is back."""
    broker = EmbeddedBroker()
    broker.__enter__()
    try:
        port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
        settings = Settings(bootstrap_servers=broker.bootstrap_servers)
        ensure_topics(client_config(settings.kafka), ["blog.posts"], partitions=2)
        with command_side(sqlite_url) as cs:
            stop = threading.Event()
            relay = OutboxRelay(
                cs.engine,
                publisher=EventPublisher(producer_config(settings.kafka), serde=cs.outbox.serde),
                database_errors=database_errors,
                tables=cs.tables,
                settings=RelaySettings(
                    poll_interval_s=0.05, retry_initial_s=0.2, retry_max_s=1.0, flush_timeout_s=3.0
                ),
                stop=stop,
            )
            thread = threading.Thread(target=relay.run_forever, daemon=True)
            thread.start()
            try:
                for i in range(10):
                    cs.blog.create(title=f"before {i}", author="ann")
                wait_for(
                    "the first events published",
                    lambda: pending_count(cs.engine, cs.tables) == 0,
                    timeout_s=30,
                )
                broker.__exit__(None, None, None)
                after = [
                    cs.blog.create(title=f"during {i}", author="ann").event_id for i in range(10)
                ]
                wait_for("a failed round", lambda: relay.stats.retries >= 1, timeout_s=30)
                assert pending_count(cs.engine, cs.tables) == 10, (
                    "a round without acks was marked published"
                )
                broker = EmbeddedBroker(port=port)
                broker.__enter__()
                ensure_topics(client_config(settings.kafka), ["blog.posts"], partitions=2)
                wait_for(
                    "the backlog published after the restart",
                    lambda: pending_count(cs.engine, cs.tables) == 0,
                    timeout_s=60,
                )
            finally:
                stop.set()
                thread.join(timeout=30)
                relay.publisher.close(5)
        records = read_topic(broker.bootstrap_servers, "blog.posts", expected=10)
        assert {r.headers["event_id"] for r in records} >= set(after)
        assert relay.stats.published >= 20
    finally:
        broker.__exit__(None, None, None)
