"""The main job and the command line, as a user runs them."""

from __future__ import annotations

import re
import socket

import pytest

from tests.support import run_cli


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_demo_runs_on_the_embedded_default(tmp_path) -> None:
    """`projectionist demo` starts its own broker, projects the sample, prints the tags, exits 0."""
    db = tmp_path / "demo.db"
    result = run_cli(
        [
            "demo",
            "--commands",
            "600",
            "--database-url",
            f"sqlite:///{db}",
            "--command-database-url",
            f"sqlite:///{tmp_path / 'commands.db'}",
        ],
        env={"PROJECTIONIST_BOOTSTRAP_SERVERS": ""},
        timeout_s=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Top tags" in result.stdout
    assert "events applied" in result.stdout
    assert "Sales by currency" in result.stdout
    assert "600 commands" in result.stdout
    assert "python" in result.stdout  # the most frequent tag of the Zipf vocabulary
    assert db.exists()
    found = re.search(r"embedded Tansu at 127\.0\.0\.1:(\d+)", result.stdout)
    assert found, result.stdout
    assert not _listening(int(found[1])), "the demo left its broker running"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["demo", "--help"],
        ["consume", "--help"],
        ["topics", "--help"],
        ["produce", "--help"],
        ["broker", "--help"],
    ],
)
def test_help_explains_itself(args: list[str]) -> None:
    """Every command answers --help with a description and exit 0 (no args shows help too)."""
    result = run_cli(args, env={})
    assert result.returncode in (0, 2)
    text = result.stdout + result.stderr
    assert "Usage" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["consume", "nosuch", "-b", "127.0.0.1:1"], {}, "unknown projection 'nosuch'"),
        (["consume", "blog"], {"PROJECTIONIST_BOOTSTRAP_SERVERS": ""}, "no Kafka to talk to"),
        (
            ["consume", "blog", "-b", "127.0.0.1:1"],
            {"PROJECTIONIST_BATCH_MAX_MESSAGES": "-5"},
            "batch_max_messages",
        ),
        (["consume", "blog", "-b", "127.0.0.1:1", "-d", "mysql://x"], {}, "unsupported database"),
    ],
)
def test_user_mistakes_get_one_clear_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    """Bad input ends with exit 2 and a one-line error, never a traceback."""
    result = run_cli(args, env=env, timeout_s=30)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
