"""A broker that is away ends every one-off command promptly, in one line, exit 1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import TEST_ENV, run_cli
from tests.support.processes import assert_one_error_line

DOWN_BROKER = "127.0.0.1:1"  # nothing listens on port 1
PROBE_S = 2  # PROJECTIONIST_BROKER_TIMEOUT_S for these cases (default 10)
# every one-off command that talks to the broker; the services wait it out instead
# (tests/faults/test_startup_outage)
ONE_OFF: list[list[str]] = [
    ["produce", "--count", "3"],
    ["produce-orders", "--orders", "2"],
    ["relay", "--drain"],
    ["consume", "blog", "--drain"],
    ["rebuild", "blog"],
    ["replay", "blog", "--from", "beginning"],
    ["status"],
    ["topics"],
    ["cleanup", "blog"],
    ["dlq", "list", "blog"],
    ["dlq", "show", "blog", "--partition", "0", "--offset", "0"],
    ["dlq", "replay", "blog", "--all"],
    ["dlq", "purge", "blog", "--yes"],
    ["demo", "--commands", "10"],
]


@pytest.mark.parametrize("command", ONE_OFF, ids=[" ".join(c[:2]) for c in ONE_OFF])
def test_a_broker_away_ends_a_one_off_command_promptly(tmp_path: Path, command: list[str]) -> None:
    """Bootstrap at a closed port: within the broker timeout, one `error:` line naming the broker address, exit 1, no client log lines."""
    env = {
        **TEST_ENV,
        "PROJECTIONIST_BOOTSTRAP_SERVERS": DOWN_BROKER,
        "PROJECTIONIST_BROKER_TIMEOUT_S": str(PROBE_S),
        "PROJECTIONIST_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "PROJECTIONIST_COMMAND_DATABASE_URL": f"sqlite:///{tmp_path / 'commands.sqlite'}",
        "PROJECTIONIST_LOG_FORMAT": "console",
    }
    started = time.monotonic()
    result = run_cli(command, env=env, timeout_s=60)
    elapsed = time.monotonic() - started
    assert result.stdout.strip() == "", result.stdout[-2000:]
    # every line counts here, librdkafka's too: the probe's client logs nothing
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, "\n".join(lines[:20])
    assert_one_error_line(result, 1, DOWN_BROKER)
    assert "PROJECTIONIST_BROKER_TIMEOUT_S" in lines[0]
    assert PROBE_S <= elapsed < PROBE_S + 8, elapsed
