"""The error events a poll returns beside messages, sorted out before a batch is prepared."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from confluent_kafka import KafkaError

from consumers.kafka.message import MessageLike
from consumers.runtime.history_guard import data_loss_error
from schemas.errors import BrokerUnavailable

__all__ = ["without_errors"]

log = structlog.get_logger(__name__)


def without_errors(messages: Sequence[Any], slot: str) -> Sequence[MessageLike]:
    """The messages of a poll without its error events. A fetch outside the log (the
    offset after the stored checkpoint is gone) is data loss for ``slot``; a fatal
    client error means the broker is unusable; others are logged (librdkafka retries)."""
    # the common batch has no error: one C-speed scan, no copy
    if all([msg.error() is None for msg in messages]):
        return messages
    good: list[MessageLike] = []
    for msg in messages:
        err = msg.error()
        if err is None:
            good.append(msg)
            continue
        if (
            err.code() == KafkaError._AUTO_OFFSET_RESET
            or err.code() == KafkaError.OFFSET_OUT_OF_RANGE
        ):
            raise data_loss_error(
                slot,
                (msg.topic() or "", msg.partition() or 0),
                f"no longer holds the offset after the stored checkpoint ({err.str()})",
            )
        if err.fatal():
            raise BrokerUnavailable(f"fatal consumer error: {err.str()}")
        log.warning("consumer error", error=err.str(), topic=msg.topic())
    return good
