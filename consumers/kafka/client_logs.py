"""librdkafka's own log lines (``%3|…|FAIL|…``) through the structured logger.

confluent-kafka hands them to a :class:`logging.Logger` given as the ``logger`` setting
(served from ``poll``/``consume``, i.e. on the thread that runs the loop, whose
structlog context names the projection). A broker that is away makes librdkafka repeat
the same complaint many times a second: each distinct line is logged at most once per
``window_s``, the next one saying how many were suppressed meanwhile.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

import structlog

__all__ = ["ClientLogHandler", "client_logger"]

_NAME = "projectionist.librdkafka"
_DIGITS = re.compile(r"\d+")
_lock = threading.Lock()


class ClientLogHandler(logging.Handler):
    """Forwards client log records to structlog, rate-limited per distinct line."""

    def __init__(
        self, *, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # key -> (last logged, suppressed)
        self._log = structlog.get_logger("librdkafka")

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        facility, client, message = (
            (str(a) for a in args) if len(args) == 3 else ("", "", record.getMessage())
        )
        # "…:9092/1: Connect to ipv4#127.0.0.1:9092 failed … (after 0ms in state CONNECT)":
        # one complaint whatever its counters and durations say
        key = f"{facility}|{_DIGITS.sub('#', message)[:200]}"
        now = self._clock()
        with _lock:
            last, suppressed = self._seen.get(key, (float("-inf"), 0))
            if now - last < self._window_s:
                self._seen[key] = (last, suppressed + 1)
                return
            self._seen[key] = (now, 0)
            if len(self._seen) > 1_000:  # bounded: forget the oldest lines
                for old in sorted(self._seen, key=lambda k: self._seen[k][0])[:500]:
                    del self._seen[old]
        fields: dict[str, object] = {"facility": facility, "client": client}
        if suppressed:
            fields["suppressed"] = suppressed
        self._log.log(record.levelno, message, **fields)


def client_logger() -> logging.Logger:
    """The process's one logger for Kafka clients (created on first use, not at import)."""
    logger = logging.getLogger(_NAME)
    with _lock:
        if not logger.handlers:
            logger.addHandler(ClientLogHandler())
            logger.setLevel(logging.DEBUG)  # librdkafka filters by its own `debug`/`log_level`
            logger.propagate = False
    return logger
