"""Plain objects that satisfy the runtime's protocols, for tests without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.kafka.dead_letters import DeadLetter
from consumers.testing import Message

#: the test kit's message (users' tests build the same one)
FakeMessage = Message


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
