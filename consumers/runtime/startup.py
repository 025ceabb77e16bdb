"""Start-up steps that need the database or the broker, retried like a failed batch.

An outage at start is as transient as one mid-run: a process that exits on it only turns
into a crash loop (and a kubelet back-off that outlasts the outage). So the first
contact is retried with the loop's backoff until it succeeds or the process is stopped,
and ``waiting`` hears each failure (the probes say "not ready" and why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog

from consumers.runtime.stop import StopSignal
from consumers.settings.concerns import LoopSettings
from schemas.backoff import Backoff
from schemas.errors import RetryableError

__all__ = ["retry_start"]

log = structlog.get_logger(__name__)
T = TypeVar("T")


def retry_start(
    step: Callable[[], T],
    *,
    what: str,
    loop: LoopSettings,
    stop: StopSignal,
    waiting: Callable[[str], None] | None = None,
) -> T | None:
    """``step()`` once it succeeds; None when stopped first. Only retryable errors retry."""
    backoff = Backoff(loop.retry_initial_s, loop.retry_max_s)
    attempt = 0
    while not stop.is_set():
        try:
            return step()
        except RetryableError as exc:
            attempt += 1
            delay = backoff.delay(attempt)
            log.warning(
                f"{what} failed at start, retrying",
                error=str(exc)[:300],
                attempt=attempt,
                delay_s=round(delay, 2),
            )
            if waiting is not None:
                waiting(f"{what} failed: {type(exc).__name__}: {str(exc)[:200]}")
            stop.wait(delay)
    return None
