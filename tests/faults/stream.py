"""A seeded event stream with noise and poison, published with every message's position recorded."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.kafka.dead_letters import dead_letter_topic
from consumers.settings.models import Settings
from producers import SampleEvent, blog_events
from schemas import AvroSerde, SchemaCatalog

SERDE = AvroSerde(SchemaCatalog.load())
PARTITIONS = 4


@dataclass(frozen=True)
class Item:
    """One message to publish: a good event (``sample``) or poison (``poison`` = error class)."""

    key: str
    value: bytes
    event_id: str
    event_type: str
    sample: SampleEvent | None = None
    poison: str | None = None
    kind: str = "event"  # event | duplicate | late-version | poison


@dataclass(frozen=True)
class Published:
    item: Item
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def position(self) -> tuple[int, int]:
        return (self.partition, self.offset)


def _encode(sample: SampleEvent) -> bytes:
    return SERDE.encode(sample.event_type, sample.record)


def good(sample: SampleEvent, kind: str = "event") -> Item:
    eid = str(sample.record["event_id"])
    return Item(sample.key, _encode(sample), eid, sample.event_type, sample=sample, kind=kind)


def poison_item(rng: random.Random, key: str, sample: SampleEvent) -> Item:
    """Corrupt bytes, an unknown fingerprint, or a schema-valid but invalid event."""
    eid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    kind = rng.choice(["UndecodableError", "UnknownSchemaError", "InvalidEventError"])
    body = _encode(sample)
    if kind == "UndecodableError":  # not our framing, or trailing garbage after the record
        value = rng.choice([b"{not avro}", body + b"\x07\x07"])
    elif kind == "UnknownSchemaError":
        value = body[:2] + bytes(rng.getrandbits(8) for _ in range(8)) + body[10:]
    else:
        record = {**sample.record, "event_id": eid, "version": rng.choice([0, -3])}
        value = SERDE.encode(sample.event_type, record)  # encode() does not validate
    return Item(key, value, eid, sample.event_type, poison=kind, kind="poison")


def build_stream(
    rng: random.Random,
    *,
    posts: int,
    poison: int = 0,
    duplicates: float = 0.0,
    late_versions: float = 0.0,
) -> list[Item]:
    """Blog events of ``posts`` posts, plus duplicates at new offsets, late versions, poison."""
    samples = blog_events(posts=posts, seed=rng.randrange(1 << 30))
    items = [good(s) for s in samples]
    out = list(items)
    for i, item in enumerate(items):
        sample = item.sample
        assert sample is not None
        if rng.random() < duplicates:  # the same event again, a little later: a new offset
            out.insert(min(len(out), i + rng.randint(1, 40)), good(sample, "duplicate"))
        if sample.event_type == "blog.BlogPostUpdated" and rng.random() < late_versions:
            # an older version re-emitted with a new event id, after the newer ones
            late = SampleEvent(
                sample.aggregate,
                sample.event_type,
                sample.key,
                {**sample.record, "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4))},
            )
            out.append(good(late, "late-version"))
    for _ in range(poison):
        victim = rng.choice(items)
        assert victim.sample is not None
        out.insert(rng.randrange(len(out) + 1), poison_item(rng, victim.key, victim.sample))
    return out


def publish(
    bootstrap: str, topic: str, items: Sequence[Item], *, partitions: int = PARTITIONS
) -> list[Published]:
    """Publish in order and return each message's partition and offset from its ack."""
    settings = Settings(bootstrap_servers=bootstrap)
    ensure_topics(
        client_config(settings.kafka),
        [topic, dead_letter_topic(topic, "blog", ".dlq")],
        partitions=partitions,
    )
    producer = Producer(producer_config(settings.kafka))
    acked: dict[int, Published] = {}
    failures: list[str] = []

    def on_delivery(index: int) -> object:
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(err.str())
                return
            _ts_type, ts = msg.timestamp()
            acked[index] = Published(items[index], msg.partition(), msg.offset(), ts)

        return report

    for index, item in enumerate(items):
        while True:
            try:
                producer.produce(
                    topic,
                    key=item.key.encode(),
                    value=item.value,
                    headers=[
                        ("event_id", item.event_id.encode()),
                        ("event_type", item.event_type.encode()),
                    ],
                    on_delivery=on_delivery(index),
                )
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0, "events not acknowledged in 60 s"
    assert not failures, failures[:3]
    return [acked[i] for i in range(len(items))]
