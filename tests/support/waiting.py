"""Waiting on conditions with a deadline, and failing loudly when a real part is missing."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """A real component is missing: fail under CI=true, skip on a developer machine."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: real components are required)", pytrace=False)
    pytest.skip(reason)


def wait_for(
    what: str, check: Callable[[], T | None], *, timeout_s: float = 60.0, every_s: float = 0.05
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
