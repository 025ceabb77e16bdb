"""`projectionist broker`'s exports: the settings that make the embedded broker fast."""

from __future__ import annotations

import pytest

from consumers.kafka.broker import EMBEDDED_CONSUMER_SETTINGS
from consumers.kafka.config import consumer_config
from consumers.settings.models import load_settings


def test_the_printed_exports_are_settings_the_consumer_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each `export PROJECTIONIST_<NAME>=<value>` the broker command prints reaches the
    consumer's librdkafka config: a short session (joins in ~3 s, not ~23 s) and eager
    assignment (Tansu's cooperative joins take 11-16 s)."""
    monkeypatch.setenv("PROJECTIONIST_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    defaults = consumer_config(load_settings().kafka, group_id="g")
    for name, value in EMBEDDED_CONSUMER_SETTINGS.items():
        monkeypatch.setenv(f"PROJECTIONIST_{name.upper()}", str(value))
    conf = consumer_config(load_settings().kafka, group_id="g")
    assert conf["session.timeout.ms"] == 6_000
    assert conf["heartbeat.interval.ms"] == 500
    assert conf["partition.assignment.strategy"] == "range"
    assert defaults["session.timeout.ms"] == 45_000, "real clusters keep Kafka's default"
