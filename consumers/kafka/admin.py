"""Topic administration: create the topics a deployment needs, purge dead-letter topics."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.errors import BrokerUnavailable

__all__ = ["delete_groups", "ensure_topics", "purge_topics", "reach_broker"]


def reach_broker(conf: Mapping[str, Any], *, timeout_s: float) -> None:
    """Fail within ``timeout_s`` with one line naming the broker when it does not answer.

    One-off commands call this first; services wait out an outage instead. The probe's
    client logs nothing: its failure is the one line."""
    admin = AdminClient({**conf, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        reason = error.str() if error is not None else str(exc)
        raise BrokerUnavailable(
            f"no answer from the Kafka broker at {conf.get('bootstrap.servers')} within "
            f"{timeout_s:g}s (PROJECTIONIST_BROKER_TIMEOUT_S): {reason}"
        ) from exc


def ensure_topics(
    conf: Mapping[str, Any], names: Iterable[str], *, partitions: int, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet (explicitly: auto-create picks its own
    partition count); return the names created."""
    admin = AdminClient(dict(conf))
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot list topics: {exc}") from exc
    wanted = [n for n in dict.fromkeys(names) if n not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=-1) for n in wanted],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerUnavailable(f"cannot create topic {name}: {exc}") from exc
    return created


def delete_groups(
    conf: Mapping[str, Any], names: Iterable[str], *, timeout_s: float = 30.0
) -> list[str]:
    """Delete the consumer groups ``names`` that exist; return those deleted.

    Retired groups left behind keep their frozen commits, which lag exporters (Burrow,
    kafka_exporter) report as ever-growing lag."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    admin = AdminClient(dict(conf))
    futures = admin.delete_consumer_groups(wanted, request_timeout=timeout_s)
    deleted = []
    for name, future in futures.items():
        try:
            future.result()
            deleted.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
                raise BrokerUnavailable(f"cannot delete consumer group {name}: {exc}") from exc
    return deleted


def purge_topics(conf: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """Delete every message of the existing ``names`` (delete, then recreate each with its
    partition count: brokers differ in support for ``delete_records``); return those purged."""
    admin = AdminClient(dict(conf))
    meta = admin.list_topics(timeout=30).topics
    sizes = {t: len(meta[t].partitions) for t in names if t in meta}
    if sizes:
        for future in admin.delete_topics(list(sizes), operation_timeout=30).values():
            future.result()
    for topic, partitions in sizes.items():
        _recreate(admin, topic, partitions)
    return list(sizes)


def _recreate(admin: AdminClient, topic: str, partitions: int, timeout_s: float = 30.0) -> None:
    """Topic deletion completes asynchronously: retry the creation until it is accepted."""
    deadline = time.monotonic() + timeout_s
    while True:
        future = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=-1)]
        )[topic]
        try:
            future.result()
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"cannot recreate {topic}: {exc}") from exc
            time.sleep(0.5)
