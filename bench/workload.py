"""The benchmark's workload: seeded blog events, published once per topic.

Sizes are the issue's (≥ 200,000 events over 20,000 posts; 1,000,000 for the
rebuild), 4 partitions, Avro single-object encoding, fixed seeds. Events are generated
and published in chunks of posts so the orchestrator never holds a million records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.kafka.dead_letters import dead_letter_topic
from consumers.settings.models import Settings
from producers import EventPublisher, SampleEvent, blog_events, with_noise
from schemas import AvroSerde, SchemaCatalog

__all__ = ["PARTITIONS", "Published", "blog_workload", "create_topic", "publish", "publish_paced"]

PARTITIONS = 4
EVENTS_PER_POST = 10  # 1 create + ~9 edits (tags change on each), ~5 % deleted
_CHUNK_POSTS = 5_000


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    events: int
    posts: int
    seconds: float


def blog_workload(*, events: int, seed: int = 42) -> Iterator[SampleEvent]:
    """About ``events`` blog events over ``events / 10`` posts, in chunks of posts.

    Post ids stay unique across chunks; each chunk interleaves its posts at random and
    re-publishes 1 % duplicates and 1 % stale edits, like an outbox relay would.
    """
    posts = max(1, events // EVENTS_PER_POST)
    for chunk, first in enumerate(range(0, posts, _CHUNK_POSTS)):
        n = min(_CHUNK_POSTS, posts - first)
        sample = blog_events(posts=n, edits_per_post=EVENTS_PER_POST - 1, seed=seed + chunk)
        noisy = with_noise(sample, duplicate_ratio=0.01, stale_ratio=0.01, seed=seed + chunk)
        for ev in noisy:
            if not first:
                yield ev
                continue
            post_id = f"post-{first + int(ev.key.rsplit('-', 1)[1]):07d}"
            yield SampleEvent(
                ev.aggregate, ev.event_type, post_id, {**ev.record, "post_id": post_id}
            )


def create_topic(bootstrap: str, topic: str, *, projection: str = "blog") -> None:
    """``topic`` and ``projection``'s dead-letter topic for it, 4 partitions each."""
    settings = Settings(bootstrap_servers=bootstrap)
    ensure_topics(
        client_config(settings.kafka),
        [topic, dead_letter_topic(topic, projection, ".dlq")],
        partitions=PARTITIONS,
    )


def _publisher(bootstrap: str) -> EventPublisher:
    conf = producer_config(Settings(bootstrap_servers=bootstrap).kafka)
    conf["queue.buffering.max.messages"] = 500_000
    return EventPublisher(conf, serde=AvroSerde(SchemaCatalog.load()))


def publish(bootstrap: str, topic: str, *, events: int, seed: int = 42) -> Published:
    """Publish the workload as fast as the producer goes; wait for every ack."""
    create_topic(bootstrap, topic)
    publisher = _publisher(bootstrap)
    started = time.monotonic()
    count = 0
    post_ids: set[str] = set()
    for ev in blog_workload(events=events, seed=seed):
        publisher.publish(topic, ev.event_type, ev.record, key=ev.key)
        post_ids.add(ev.key)
        count += 1
        if count % 10_000 == 0:
            publisher.poll(0)
    publisher.flush(120)
    return Published(topic, count, len(post_ids), time.monotonic() - started)


def publish_paced(
    bootstrap: str, topic: str, *, rate: float, seconds: float, seed: int = 7
) -> Published:
    """Publish at a steady ``rate`` events/s for ``seconds`` (the latency probe)."""
    publisher = _publisher(bootstrap)
    total = int(rate * seconds)
    events = blog_workload(events=total, seed=seed)
    started = time.monotonic()
    count = 0
    post_ids: set[str] = set()
    tick = 0.01
    per_tick = rate * tick
    while count < total:
        due = min(total, int((time.monotonic() - started) / tick * per_tick) + 1)
        while count < due:
            ev = next(events)
            publisher.publish(topic, ev.event_type, ev.record, key=ev.key)
            post_ids.add(ev.key)
            count += 1
        publisher.poll(0)
        time.sleep(tick / 2)
    publisher.flush(60)
    return Published(topic, count, len(post_ids), time.monotonic() - started)
