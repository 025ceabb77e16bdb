"""Plain objects that satisfy the runtime's protocols, for tests without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.kafka.dead_letters import DeadLetter, Refused
from consumers.testing import Message

#: the test kit's message (users' tests build the same one)
FakeMessage = Message


@dataclass
class ListSink:
    """A dead-letter sink that keeps what it was given."""

    sent: list[DeadLetter] = field(default_factory=list)
    fail_times: int = 0
    #: refuse for good (like MSG_SIZE_TOO_LARGE) letters whose value is longer than this
    max_bytes: int | None = None

    def send(self, letters: list[DeadLetter]) -> list[Refused]:
        if self.fail_times:
            from schemas.errors import BrokerUnavailable

            self.fail_times -= 1
            raise BrokerUnavailable("injected")
        limit = self.max_bytes
        refused = [
            Refused(d, "MSG_SIZE_TOO_LARGE: injected")
            for d in letters
            if limit is not None and len(d.message.value() or b"") > limit
        ]
        self.sent.extend(d for d in letters if all(r.letter is not d for r in refused))
        return refused

    def close(self) -> None:
        pass
