"""Shared test machinery: broker and database selection, process helpers, waiting."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

T = TypeVar("T")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_BASE_URL = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PROJECTIONIST = str(Path(sys.executable).with_name("projectionist"))

# Test settings for any Kafka-protocol broker: eager assignment and a short session
# make group joins take ~3 s on the embedded broker (see shared BROKER notes).
TEST_ENV = {
    "PROJECTIONIST_ASSIGNMENT_STRATEGY": "range",
    "PROJECTIONIST_SESSION_TIMEOUT_MS": "6000",
    "PROJECTIONIST_HEARTBEAT_INTERVAL_MS": "500",
    "PROJECTIONIST_LOG_FORMAT": "json",
}


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


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS → Apache Kafka via testcontainers → embedded Tansu."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from consumers.kafka.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


def pg_reachable(url: str) -> bool:
    parsed = sa.engine.make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    if not pg_reachable(PG_BASE_URL):
        missing(
            f"PostgreSQL is not reachable at {sa.engine.make_url(PG_BASE_URL).render_as_string()}"
        )
    name = f"pj_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


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


def checkpoint_total(url: str, projection: str) -> int:
    """Sum of (last offset + 1) over a projection's checkpoint rows: events behind us."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("projection_checkpoints"):
                return 0
            row = conn.execute(
                sa.text(
                    "SELECT COALESCE(SUM(last_offset + 1), 0) FROM projection_checkpoints "
                    "WHERE projection = :p"
                ),
                {"p": projection},
            ).scalar_one()
            return int(row)
    finally:
        engine.dispose()


def json_line(output: str) -> dict[str, Any]:
    import json

    for line in reversed(output.strip().splitlines()):
        if line.startswith("{") and '"projection"' in line:
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise AssertionError(f"no JSON summary in output:\n{output[-2000:]}")


def load_test_settings(env: dict[str, str], **overrides: object) -> Any:
    """Settings for an in-process runner from a CLI environment (``PROJECTIONIST_*``) + overrides."""
    from consumers.settings.models import Settings

    prefix = "PROJECTIONIST_"
    fields = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    return Settings(**{**fields, **overrides})
