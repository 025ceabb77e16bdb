"""Exponential backoff for retryable work, the one formula every retry loop uses.

Attempt ``n`` (1, 2, …) waits ``min(max_s, initial_s · 2^(n-1))``; with ``jitter`` a
random share of it (50–100 %), so replicas that failed together do not retry in step.
It lives beside the error tree because every layer retries a :class:`RetryableError`:
the consumer loop, the outbox relay and the e-mail delivery.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float
    max_s: float
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` failed, from 1)."""
        delay = float(min(self.max_s, self.initial_s * 2 ** max(0, attempt - 1)))
        return delay * random.uniform(0.5, 1.0) if self.jitter else delay
