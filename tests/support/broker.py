"""The broker for tests (Kafka via env or testcontainers, else embedded Tansu) and its topics:
publishing events and poison, reading a topic back."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.kafka.dead_letters import dead_letter_topic
from consumers.settings.models import Settings
from producers import EventPublisher, SampleEvent
from schemas import AvroSerde, SchemaCatalog


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS → Apache Kafka via testcontainers → embedded Tansu."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from consumers.kafka.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


#: the shipped projections that may consume a test topic: each has its own dead-letter topic
DLQ_OWNERS = ("blog", "orders", "notifications")


def publish(bootstrap: str, topic: str, events: list[SampleEvent], *, partitions: int = 4) -> None:
    settings = Settings(bootstrap_servers=bootstrap)
    ensure_topics(
        client_config(settings.kafka),
        [topic, *(dead_letter_topic(topic, p, ".dlq") for p in DLQ_OWNERS)],
        partitions=partitions,
    )
    publisher = EventPublisher(
        producer_config(settings.kafka), serde=AvroSerde(SchemaCatalog.load())
    )
    for ev in events:
        publisher.publish(topic, ev.event_type, ev.record, key=ev.key)
    publisher.flush()
    assert publisher.delivered == len(events)


def publish_poison(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(producer_config(Settings(bootstrap_servers=bootstrap).kafka))
    for i in range(count):
        producer.produce(topic, key=f"poison-{i}".encode(), value=b"\x00not avro at all")
    assert producer.flush(30) == 0


@dataclass
class Record:
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: bytes = field(repr=False)


def read_topic(
    bootstrap: str, topic: str, *, expected: int, timeout_s: float = 60.0, settle_s: float = 1.0
) -> list[Record]:
    """Every message of ``topic`` from the beginning: at least ``expected`` of them, then
    ``settle_s`` more polling so that extra (duplicate) messages would show up too."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "read-topic-unused",
            "enable.auto.commit": False,
            "log.connection.close": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while time.monotonic() < deadline:
            if len(out) >= expected and settle_until is None:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() > settle_until:
                break
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            headers = {k: (v or b"").decode() for k, v in (msg.headers() or [])}
            out.append(
                Record(
                    msg.partition(),
                    msg.offset(),
                    (msg.key() or b"").decode(),
                    headers,
                    msg.value() or b"",
                )
            )
        return out
    finally:
        consumer.close()
