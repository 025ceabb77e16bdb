"""Reading a dead-letter topic back: the records behind ``projectionist dlq`` and the fault tests.

A reader assigns every partition from the beginning (no consumer group, nothing
committed) and stops at the high watermark of the fetch responses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from consumers.kafka.dead_letters import HEADER_PREFIX
from schemas.errors import BrokerUnavailable, ConfigurationError

__all__ = ["DeadLetterRecord", "read_dead_letters"]


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One message of a dead-letter topic, with its ``dlq.*`` headers parsed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    dlq: dict[str, str]
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def origin(self) -> tuple[str, int, int]:
        """Where the message was first published: ``(topic, partition, offset)``."""
        return (
            self.dlq.get("original.topic", ""),
            int(self.dlq.get("original.partition", "-1")),
            int(self.dlq.get("original.offset", "-1")),
        )

    @property
    def error_class(self) -> str:
        return self.dlq.get("error.class", "?")

    @property
    def reason(self) -> str:
        return self.dlq.get("reason", "poison")

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode(errors="replace")
        return None


def read_dead_letters(
    client_conf: Mapping[str, Any], topic: str, *, timeout_s: float = 60.0
) -> list[DeadLetterRecord]:
    """Every message of ``topic``, in partition then offset order."""
    conf = {
        **client_conf,
        "group.id": f"projectionist-dlq-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
    }
    consumer = Consumer(conf)
    try:
        try:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise BrokerUnavailable(f"cannot read metadata of {topic}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise ConfigurationError(f"dead-letter topic {topic!r} does not exist")
        partitions = sorted(meta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: dict[int, list[DeadLetterRecord]] = {p: [] for p in partitions}
        deadline = time.monotonic() + timeout_s
        while not _at_end(consumer, topic, records):
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"could not read {topic} to its end within {timeout_s}s")
            for msg in consumer.consume(1_000, 0.5):
                partition = msg.partition()
                if msg.error() is not None or partition is None:
                    continue
                records[partition].append(_record(msg))
        return [r for p in partitions for r in records[p]]
    finally:
        consumer.close()


def _at_end(consumer: Consumer, topic: str, records: Mapping[int, list[DeadLetterRecord]]) -> bool:
    for partition, got in records.items():
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        if high < 0:
            return False  # no fetch response yet
        next_offset = got[-1].offset + 1 if got else max(low, 0)
        if next_offset < high:
            return False
    return True


def _record(msg: Any) -> DeadLetterRecord:
    dlq: dict[str, str] = {}
    others: list[tuple[str, bytes]] = []
    for k, v in msg.headers() or []:
        if k.startswith(HEADER_PREFIX):
            dlq[k[len(HEADER_PREFIX) :]] = (v or b"").decode(errors="replace")
        else:
            others.append((k, v or b""))
    return DeadLetterRecord(
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        key=msg.key(),
        value=msg.value(),
        dlq=dlq,
        headers=others,
    )
