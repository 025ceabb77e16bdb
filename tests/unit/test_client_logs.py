"""librdkafka's own log lines go through the structured logger, rate-limited, projection bound."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest
import structlog
from confluent_kafka import Consumer

from consumers.kafka.client_logs import ClientLogHandler
from consumers.kafka.config import client_config
from consumers.observability.logs import configure_logging
from consumers.settings.concerns import KafkaSettings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord(
        "librdkafka",
        logging.ERROR,
        __file__,
        0,
        "%s [%s] %s",
        ("FAIL", "rdkafka#c-1", message),
        None,
    )


def test_repeated_complaints_are_logged_once_per_window(capsys: pytest.CaptureFixture[str]) -> None:
    """The same line (whatever its counters) is logged once per window, then with a count."""
    configure_logging(fmt="json")
    now = [0.0]
    handler = ClientLogHandler(window_s=30, clock=lambda: now[0])
    for ms in range(50):
        handler.emit(_record(f"broker:9092/1: Connect failed (after {ms}ms in state CONNECT)"))
    handler.emit(_record("another complaint"))
    now[0] = 31.0
    handler.emit(_record("broker:9092/1: Connect failed (after 7ms in state CONNECT)"))
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    assert [ln.get("suppressed") for ln in lines] == [None, None, 49]
    assert {ln["facility"] for ln in lines} == {"FAIL"}
    assert lines[0]["level"] == "error"


def test_a_client_without_a_broker_writes_structured_lines_only(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A consumer whose broker is unreachable: no raw `%3|…|FAIL|` line, a few JSON lines that
    name the projection bound in the loop's context."""
    configure_logging(fmt="json")
    structlog.contextvars.bind_contextvars(projection="blog_v1")
    try:
        conf = client_config(KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}"))
        consumer = Consumer({**conf, "group.id": "client-logs", "reconnect.backoff.ms": 10})
        consumer.subscribe(["nowhere"])
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            consumer.consume(10, 0.2)
        consumer.close()
    finally:
        structlog.contextvars.unbind_contextvars("projection")
    err = capfd.readouterr().err
    assert "|FAIL|" not in err, err[:2000]
    lines = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    failures = [ln for ln in lines if ln.get("facility") == "FAIL"]
    assert 1 <= len(failures) <= 3, lines
    assert all(ln["projection"] == "blog_v1" for ln in failures)
