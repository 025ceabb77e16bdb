"""In-process runners for fault and probe tests: a runner on a thread, a freezable Kafka client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer

from consumers.observability.exporter import observed_runner
from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.stop import StopSignal
from consumers.settings.models import Settings

SLOT = "blog_v1"


@contextmanager
def running(
    settings: Settings, *, consumer_factory: Any = None
) -> Iterator[tuple[ProjectionRunner, str]]:
    """An in-process runner on its own thread, with its endpoints served; stopped on exit."""
    stop = StopSignal()
    errors: list[BaseException] = []
    factory = consumer_factory or Consumer  # fault injection: wrap the Kafka client
    with observed_runner(settings, "blog", stop=stop, consumer_factory=factory) as runner:

        def loop() -> None:
            try:
                runner.run_forever()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
                errors.append(exc)

        thread = threading.Thread(target=loop, name="runner", daemon=True)
        thread.start()
        try:
            yield runner, f"http://{settings.observability.metrics_address}"
        finally:
            stop.set()
            thread.join(timeout=60)
    assert not thread.is_alive(), "runner did not stop"
    if errors:
        raise errors[0]


class FreezableConsumer:
    """A real Consumer whose ``consume()`` can be made to return nothing — the client
    that keeps its group membership (librdkafka heartbeats and prefetches in the
    background) but stopped handing messages to the application."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._consumer = Consumer(conf)
        self._frozen = False
        self._thawed = threading.Event()

    def freeze(self) -> None:
        self._thawed.clear()
        self._frozen = True

    def thaw(self) -> None:
        self._frozen = False
        self._thawed.set()

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self._frozen:
            self._thawed.wait(timeout)  # the fault: a poll that yields nothing
            return []
        return list(self._consumer.consume(num_messages, timeout))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class UnassignedConsumer:
    """A real Consumer whose group hands it no partitions (a stuck group, as the embedded
    broker leaves one after quick member churn) until :meth:`let_in`; then it joins."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._consumer = Consumer(conf)
        self._subscription: tuple[Any, dict[str, Any]] | None = None
        self._let_in = threading.Event()

    def subscribe(self, topics: Any, **callbacks: Any) -> None:
        self._subscription = (topics, callbacks)

    def let_in(self) -> None:
        self._let_in.set()

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self._let_in.is_set() and self._subscription is not None:  # on the loop's thread
            topics, callbacks = self._subscription
            self._subscription = None
            self._consumer.subscribe(topics, **callbacks)
        if self._subscription is not None:
            self._let_in.wait(timeout)  # the fault: member of no assignment
            return []
        return list(self._consumer.consume(num_messages, timeout))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)
