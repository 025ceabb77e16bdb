"""Publishing helpers for integration tests (real broker)."""

from __future__ import annotations

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.settings.models import Settings
from producers import EventPublisher, SampleEvent
from schemas import AvroSerde, SchemaCatalog


def publish(bootstrap: str, topic: str, events: list[SampleEvent], *, partitions: int = 4) -> None:
    settings = Settings(bootstrap_servers=bootstrap)
    ensure_topics(client_config(settings.kafka), [topic, topic + ".dlq"], partitions=partitions)
    publisher = EventPublisher(
        producer_config(settings.kafka), serde=AvroSerde(SchemaCatalog.load())
    )
    for ev in events:
        publisher.publish(topic, ev.event_type, ev.record, key=ev.key)
    publisher.flush()
    assert publisher.delivered == len(events)
