"""Plain objects that satisfy the runtime's protocols, for tests without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.kafka.dead_letters import DeadLetter


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = None
    _headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    _timestamp: tuple[int, int] = (1, 1_700_000_000_000)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def error(self) -> None:
        return None


@dataclass
class ListSink:
    """A dead-letter sink that keeps what it was given."""

    sent: list[DeadLetter] = field(default_factory=list)
    fail_times: int = 0

    def send(self, letters: list[DeadLetter]) -> None:
        if self.fail_times:
            from schemas.errors import BrokerUnavailable

            self.fail_times -= 1
            raise BrokerUnavailable("injected")
        self.sent.extend(letters)

    def close(self) -> None:
        pass
