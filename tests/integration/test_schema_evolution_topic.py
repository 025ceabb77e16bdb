"""One topic holding v1 and v2 events, single-object and Confluent-framed, projects correctly."""

from __future__ import annotations

import random

from consumers.app import build_runner
from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.kafka.dead_letters import dead_letter_topic
from consumers.settings.models import Settings
from producers import EventPublisher, blog_events, with_noise
from producers.schema_registry import RegistryFraming, registry_client
from schemas import AvroSerde, SchemaCatalog
from tests.support import unique
from tests.support.oracle import assert_blog_matches


def test_mixed_versions_and_framings_on_one_topic(bootstrap: str, sqlite_url: str) -> None:
    """Updates written as v1 or v2 (with slug), each framed single-object or Confluent (mock
    registry), interleaved on one topic: the blog projection equals the oracle, no dead letters."""
    topic = unique("blog-mixed")
    settings = Settings(
        bootstrap_servers=bootstrap,
        database_url=sqlite_url,
        blog_topic=topic,
        group_prefix=unique("mixed"),
        assignment_strategy="range",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    ensure_topics(
        client_config(settings.kafka),
        [topic, dead_letter_topic(topic, "blog", settings.topics.dlq_suffix)],
        partitions=3,
    )
    catalog = SchemaCatalog.load()
    serde = AvroSerde(catalog)
    registry = RegistryFraming(registry_client("mock://mixed-topic"), catalog)
    events = with_noise(
        blog_events(posts=300, seed=17), duplicate_ratio=0.03, stale_ratio=0.03, seed=17
    )
    rng = random.Random(17)
    publisher = EventPublisher(producer_config(settings.kafka), serde=serde)
    seen = {"v1": 0, "v2": 0, "confluent": 0, "single": 0}
    for ev in events:
        version = None
        record = ev.record
        if ev.event_type == "blog.BlogPostUpdated":
            version = rng.choice([1, 2])
            seen[f"v{version}"] += 1
            if version == 2:
                record = {**record, "slug": f"slug-{record['post_id']}"}
        value = serde.encode(ev.event_type, record, version=version)
        if rng.random() < 0.5:
            value = registry(value)
            seen["confluent"] += 1
        else:
            seen["single"] += 1
        publisher.publish_raw(
            topic, value, key=ev.key, event_id=str(record["event_id"]), event_type=ev.event_type
        )
    publisher.flush()
    assert min(seen.values()) > 100, seen

    reader = AvroSerde(catalog, schema_lookup=registry.schema_source)
    runner = build_runner(settings, "blog", bootstrap_servers=bootstrap, serde=reader)
    stats = runner.drain(timeout_s=90)
    assert stats.consumed == len(events)
    assert stats.dead_lettered == 0
    assert_blog_matches(sqlite_url, events)
