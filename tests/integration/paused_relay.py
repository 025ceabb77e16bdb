"""``projectionist relay`` that stops for good between the broker's ack and the mark.

Run by the relay crash test as ``python -m tests.integration.paused_relay`` with the
usual ``PROJECTIONIST_*`` environment. After the broker acknowledged the first round
it logs ``relay.paused_after_ack`` and sleeps, so the test can SIGKILL it right there.
The pause wraps the relay's publisher (its public seam): the product has no test hook.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from consumers.app import build_relay, command_engine
from consumers.observability.logs import configure_logging
from consumers.runtime.stop import StopSignal
from consumers.settings.models import load_settings

PAUSE_S = 300.0


class PausingPublisher:
    """The relay's publisher, pausing after each acknowledged flush (before the mark)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def flush(self, timeout_s: float = 60.0) -> None:
        self._inner.flush(timeout_s)
        structlog.get_logger(__name__).warning("relay.paused_after_ack")
        time.sleep(PAUSE_S)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def main() -> None:
    settings = load_settings()
    configure_logging(fmt=settings.observability.log_format, level=settings.observability.log_level)
    stop = StopSignal()
    stop.install()
    engine = command_engine(settings)
    relay = build_relay(settings, engine, stop)
    relay.publisher = PausingPublisher(relay.publisher)  # type: ignore[assignment]
    relay.run_forever()


if __name__ == "__main__":
    main()
