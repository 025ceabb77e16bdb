"""Dead letters on Kafka: the sink that writes them and the reader that reads them back.

**Topics.** Each projection has its own dead-letter topic per source topic,
``<topic>.<projection><suffix>`` (:func:`dead_letter_topic`), so two projections of one
topic never mix their letters and ``dlq purge`` of one leaves the other's alone. An
empty suffix, or a dead-letter topic that is also a source topic, is refused
(:func:`check_dead_letter_topics`): letters would be consumed again as events.

**Writing.** Poison messages go to their projection's dead-letter topic with the original bytes
untouched; headers say where the message came from and why it failed. ``send``
returns only once the broker has acknowledged every dead letter, because the caller
advances the checkpoint past them right after: a dead letter is never lost. A letter
the broker refuses *for good* (:data:`PERMANENT_REFUSALS`: too large, an invalid
record) is returned as :class:`Refused` instead of being retried forever; the caller
keeps it in the database (``projections.progress.dead_letter_log``), so one such
message never blocks its partition. Any other failure is an outage: retried. A crash
between the acknowledgement and the database commit can send the same dead letter
twice; the ``dlq.original.*`` headers identify such copies, and ``dlq replay`` skips them.

**Reading** (``projectionist dlq`` and the fault tests): a reader assigns every
partition from the beginning (no consumer group, nothing committed) and stops at the
high watermark of the fetch responses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from consumers.kafka.message import MessageLike
from schemas.errors import BrokerUnavailable, ConfigurationError

__all__ = [
    "HEADER_PREFIX",
    "PERMANENT_REFUSALS",
    "DeadLetter",
    "DeadLetterRecord",
    "DeadLetterSink",
    "KafkaDeadLetterSink",
    "Refused",
    "check_dead_letter_topics",
    "dead_letter_headers",
    "dead_letter_topic",
    "read_dead_letters",
]

HEADER_PREFIX = "dlq."


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: MessageLike
    projection: str
    error: BaseException
    first_failure_ms: int
    attempts: int = 1
    reason: str = "poison"  # or "parked": an earlier event of the same key failed


def dead_letter_topic(topic: str, projection: str, suffix: str) -> str:
    """Where ``projection``'s dead letters from ``topic`` go: ``<topic>.<projection><suffix>``."""
    return f"{topic}.{projection}{suffix}"


def check_dead_letter_topics(projections: Mapping[str, Sequence[str]], suffix: str) -> None:
    """Refuse (one line) an empty suffix or a dead-letter topic that is a source topic.

    ``projections``: each projection's name and the topics it consumes.
    """
    if not suffix:
        raise ConfigurationError(
            "PROJECTIONIST_DLQ_SUFFIX must not be empty (dead-letter topics are "
            "<topic>.<projection><suffix>; e.g. .dlq)"
        )
    sources = {t for topics in projections.values() for t in topics}
    for name, topics in sorted(projections.items()):
        for topic in topics:
            dlq = dead_letter_topic(topic, name, suffix)
            if dlq in sources:
                raise ConfigurationError(
                    f"dead-letter topic {dlq!r} of projection {name!r} is also a source "
                    "topic: dead letters would be consumed again; change PROJECTIONIST_DLQ_SUFFIX"
                )


@dataclass(frozen=True, slots=True)
class Refused:
    """A dead letter the broker will never take, and its answer."""

    letter: DeadLetter
    reason: str


#: error codes that no retry can change: the letter itself is the problem
PERMANENT_REFUSALS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,  # the client's message.max.bytes, or the broker's
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,  # outside the topic's timestamp window
    }
)


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> Sequence[Refused]:
        """Send and wait for every ack; return the letters refused for good."""
        ...

    def close(self) -> None: ...


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
    msg = letter.message
    ts_type, ts = msg.timestamp()
    fields = {
        "original.topic": msg.topic() or "",
        "original.partition": str(msg.partition()),
        "original.offset": str(msg.offset()),
        "original.timestamp": str(ts if ts_type else -1),
        "projection": letter.projection,
        "reason": letter.reason,
        "error.class": type(letter.error).__name__,
        "error.message": str(letter.error)[:1000],
        "first.failure.ms": str(letter.first_failure_ms),
        "attempts": str(letter.attempts),
    }
    headers: list[tuple[str, str | bytes | None]] = [
        (HEADER_PREFIX + k, v.encode()) for k, v in fields.items()
    ]
    # Keep the original headers too (event_id, event_type …) for tooling.
    headers.extend((k, v or b"") for k, v in (msg.headers() or []))
    return headers


class KafkaDeadLetterSink:
    """Produces dead letters with an idempotent producer and waits for every ack."""

    def __init__(
        self, producer_conf: dict[str, Any], *, suffix: str, timeout_s: float = 60.0
    ) -> None:
        self._conf = dict(producer_conf)
        self._producer = Producer(self._conf)
        self._suffix = suffix
        self._timeout_s = timeout_s

    def topic_for(self, letter: DeadLetter) -> str:
        return dead_letter_topic(letter.message.topic() or "", letter.projection, self._suffix)

    def send(self, letters: Sequence[DeadLetter]) -> list[Refused]:
        if not letters:
            return []
        failures: list[KafkaError] = []
        refused: list[Refused] = []

        def on_delivery(letter: DeadLetter) -> Callable[[KafkaError | None, Message], None]:
            def report(err: KafkaError | None, _msg: Message) -> None:
                if err is None:
                    return
                if err.code() in PERMANENT_REFUSALS:
                    refused.append(Refused(letter, _describe(err)))
                else:
                    failures.append(err)

            return report

        for letter in letters:
            try:
                self._producer.produce(
                    self.topic_for(letter),
                    key=letter.message.key(),
                    value=letter.message.value(),
                    headers=dead_letter_headers(letter),
                    on_delivery=on_delivery(letter),
                )
            except KafkaException as exc:
                error = exc.args[0]
                if isinstance(error, KafkaError) and error.code() in PERMANENT_REFUSALS:
                    refused.append(Refused(letter, _describe(error)))
                    continue
                self._recover(error)
                raise BrokerUnavailable(f"cannot send dead letters: {exc}") from exc
        deadline = time.monotonic() + self._timeout_s
        while self._producer.flush(0.5) > 0:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"dead letters not acknowledged within {self._timeout_s}s")
        if failures:
            self._recover(*failures)
            raise BrokerUnavailable(f"dead letters were not accepted: {failures[0]}")
        return refused

    def _recover(self, *errors: KafkaError) -> None:
        """A fatal producer error (e.g. the broker lost our producer id) needs a new producer;
        the caller's retry then sends the dead letters again."""
        if any(isinstance(e, KafkaError) and e.fatal() for e in errors):
            self._producer = Producer(self._conf)

    def close(self) -> None:
        self._producer.flush(10)


def _describe(error: KafkaError) -> str:
    return f"{error.name()}: {error.str()}"[:500]


# -- reading a dead-letter topic back ------------------------------------------------------
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
