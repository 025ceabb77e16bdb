"""Dead letters: poison messages go to ``<topic><suffix>`` with the original bytes untouched.

Headers say where the message came from and why it failed. ``send`` returns only once
the broker has acknowledged every dead letter, because the caller advances the
checkpoint past them right after: a dead letter is never lost. A crash between the
acknowledgement and the database commit can send the same dead letter twice; the
``dlq.original.*`` headers identify such copies, and ``dlq replay`` skips them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumers.kafka.message import MessageLike
from schemas.errors import BrokerUnavailable

__all__ = ["HEADER_PREFIX", "DeadLetter", "DeadLetterSink", "KafkaDeadLetterSink"]

HEADER_PREFIX = "dlq."


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: MessageLike
    projection: str
    error: BaseException
    first_failure_ms: int
    attempts: int = 1
    reason: str = "poison"  # or "parked": an earlier event of the same key failed


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None: ...
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

    def topic_for(self, topic: str) -> str:
        return topic + self._suffix

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        failures: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        try:
            for letter in letters:
                self._producer.produce(
                    self.topic_for(letter.message.topic() or ""),
                    key=letter.message.key(),
                    value=letter.message.value(),
                    headers=dead_letter_headers(letter),
                    on_delivery=on_delivery,
                )
        except KafkaException as exc:
            self._recover(exc.args[0])
            raise BrokerUnavailable(f"cannot send dead letters: {exc}") from exc
        deadline = time.monotonic() + self._timeout_s
        while self._producer.flush(0.5) > 0:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"dead letters not acknowledged within {self._timeout_s}s")
        if failures:
            self._recover(*failures)
            raise BrokerUnavailable(f"dead letters were not accepted: {failures[0]}")

    def _recover(self, *errors: KafkaError) -> None:
        """A fatal producer error (e.g. the broker lost our producer id) needs a new producer;
        the caller's retry then sends the dead letters again."""
        if any(isinstance(e, KafkaError) and e.fatal() for e in errors):
            self._producer = Producer(self._conf)

    def close(self) -> None:
        self._producer.flush(10)
