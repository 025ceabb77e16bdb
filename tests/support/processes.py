"""The ``projectionist`` command (and test drivers) as processes: start, run, read their JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.waiting import missing

PROJECTIONIST = str(Path(sys.executable).with_name("projectionist"))


def venv_tool(name: str) -> Path:
    """A tool installed in the virtualenv beside the interpreter (kubectl, hadolint …)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        missing(f"{name} is not in the virtualenv (make venv installs it from requirements.lock)")
    return path


# Test settings for any Kafka-protocol broker: eager assignment and a short session
# make group joins take ~3 s on the embedded broker (see shared BROKER notes).
TEST_ENV = {
    "PROJECTIONIST_ASSIGNMENT_STRATEGY": "range",
    "PROJECTIONIST_SESSION_TIMEOUT_MS": "6000",
    "PROJECTIONIST_HEARTBEAT_INTERVAL_MS": "500",
    "PROJECTIONIST_LOG_FORMAT": "json",
}


def assert_one_error_line(
    result: subprocess.CompletedProcess[str], code: int, words: str, *, secret: str = ""
) -> None:
    """The command failed as a user mistake should: exit ``code``, exactly one line of
    ours on stderr, ``error: …`` naming ``words``, no traceback, ``secret`` nowhere.
    librdkafka's own log lines (``%3|…``) are not ours and are left out of the count."""
    stdout, stderr = result.stdout, result.stderr
    assert "Traceback" not in stderr, stderr[-3000:]
    if secret:
        assert secret not in stdout + stderr
    ours = [line for line in stderr.splitlines() if line.strip() and not line.startswith("%")]
    assert len(ours) == 1, f"expected one line, got {len(ours)}:\n" + "\n".join(ours[:20])
    assert ours[0].startswith("error:"), ours[0]
    assert words in ours[0], ours[0]
    assert result.returncode == code, (result.returncode, ours[0])


def run_cli(
    args: Sequence[str], *, env: dict[str, str], timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROJECTIONIST, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def start_cli(args: Sequence[str], *, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PROJECTIONIST, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_module(module: str, *, env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m module`` from the repository root (test drivers), like :func:`start_cli`."""
    return subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def json_line(output: str) -> dict[str, Any]:

    for line in reversed(output.strip().splitlines()):
        if line.startswith("{") and '"projection"' in line:
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise AssertionError(f"no JSON summary in output:\n{output[-2000:]}")
