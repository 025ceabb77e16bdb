"""How a loop is told to stop: SIGTERM/SIGINT, or a test, sets a :class:`StopSignal`."""

from __future__ import annotations

import signal
import threading

__all__ = ["StopSignal"]


class StopSignal:
    """Set by SIGTERM/SIGINT (or a test); the loop finishes the batch in hand and exits."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)
