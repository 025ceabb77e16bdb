"""The event publisher: Avro single-object values on an idempotent producer.

Key = aggregate id (per-aggregate order within a partition); headers ``event_id``,
``event_type`` and ``occurred_at`` (epoch milliseconds). Delivery failures are
collected and raised by :meth:`EventPublisher.flush`, never dropped. A fatal producer
error (e.g. the broker forgot our producer id) recreates the producer: the events it
had in flight are reported as failed so the caller can publish them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas import AvroSerde
from schemas.errors import BrokerUnavailable

__all__ = ["EventPublisher", "PublishError", "PublishFailure"]


@dataclass(frozen=True, slots=True)
class PublishFailure:
    topic: str
    key: str
    event_id: str
    error: str


class PublishError(BrokerUnavailable):
    """Some events were not acknowledged by the broker; ``failures`` lists them."""

    def __init__(self, failures: list[PublishFailure]) -> None:
        first = failures[0]
        super().__init__(
            f"{len(failures)} event(s) not delivered; first: {first.event_id} to "
            f"{first.topic}: {first.error}"
        )
        self.failures = failures


class EventPublisher:
    """Publishes events; call :meth:`flush` to learn that they are all durable."""

    def __init__(
        self,
        producer_conf: Mapping[str, Any],
        *,
        serde: AvroSerde,
        producer_factory: Callable[[dict[str, Any]], Producer] = Producer,
        framing: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._conf = dict(producer_conf)
        self._factory = producer_factory
        self._producer = producer_factory(self._conf)
        self._serde = serde
        #: e.g. ``RegistryFraming``: single-object bytes → Confluent wire format
        self._framing = framing
        self._failures: list[PublishFailure] = []
        self.delivered = 0

    def publish(
        self,
        topic: str,
        event_type: str,
        record: Mapping[str, Any],
        *,
        key: str,
        occurred_at_ms: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        value = self._serde.encode(event_type, record)
        if self._framing is not None:
            value = self._framing(value)
        self.publish_raw(
            topic,
            value,
            key=key,
            event_id=str(record["event_id"]),
            event_type=event_type,
            occurred_at_ms=occurred_at_ms,
            extra_headers=extra_headers,
        )

    def publish_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: str,
        event_id: str,
        event_type: str,
        occurred_at_ms: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish already-encoded bytes (tests use it for poison and duplicates)."""
        headers: list[tuple[str, str | bytes | None]] = [
            ("event_id", event_id.encode()),
            ("event_type", event_type.encode()),
            ("occurred_at", str(occurred_at_ms or int(time.time() * 1000)).encode()),
        ]
        headers.extend((k, v.encode()) for k, v in (extra_headers or {}).items())

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self.delivered += 1
            else:
                self._failures.append(PublishFailure(topic, key, event_id, err.str()))

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key.encode(), headers=headers, on_delivery=on_delivery
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
            except KafkaException as exc:
                if exc.args[0].fatal():
                    self._recreate()
                    continue
                raise BrokerUnavailable(f"cannot publish to {topic}: {exc}") from exc

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait for every acknowledgement; raise :class:`PublishError` for failed events."""
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        if remaining:
            failures.append(PublishFailure("*", "*", "*", f"{remaining} still unacknowledged"))
        if any("fatal" in f.error.lower() for f in failures):
            self._recreate()
        if failures:
            raise PublishError(failures)

    def poll(self, timeout_s: float = 0) -> None:
        self._producer.poll(timeout_s)

    def reset(self) -> None:
        """Drop everything unacknowledged and start a fresh producer (new producer id).

        For callers that retry a whole batch themselves (the outbox relay): the old
        queue would otherwise deliver late copies, and an idempotent producer whose
        broker forgot it may never recover (see the broker notes)."""
        self._recreate()
        self._failures = []

    def _recreate(self) -> None:
        # Undelivered messages of the dead producer are purged and reported as failed.
        try:
            self._producer.purge()
            self._producer.flush(1)
        except KafkaException:
            pass
        self._producer = self._factory(self._conf)

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
