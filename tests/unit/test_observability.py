"""Metrics conventions, client statistics, probe logic and log redaction (no broker)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from consumers.observability.endpoints import parse_address
from consumers.observability.logs import redact
from consumers.observability.metrics import RUNNER_FAMILIES, Metrics
from consumers.observability.observer import KafkaClientStats, LoopObserver
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stats import RunStats
from schemas.errors import ConfigurationError
from tests.support.observed import watched

NAME = re.compile(r"^projectionist_[a-z][a-z0-9_]*[a-z0-9]$")
UNBOUNDED_LABELS = {"event_id", "key", "post_id", "order_id", "offset", "message", "error"}
# words that say a quantity is a time, a size or a ratio: they need a base-unit suffix
UNIT_WORDS = {"duration": "_seconds", "age": "_seconds", "timestamp": "_seconds", "rtt": "_seconds"}


def test_metric_names_help_and_labels_follow_prometheus_conventions() -> None:
    """Every family: prefixed snake_case, base-unit suffixes, a sentence of help, bounded labels."""
    _runner, _obs, _health, _clock, registry = watched()
    families = list(registry.collect())
    assert len(families) >= len(RUNNER_FAMILIES) + 10
    problems = []
    for fam in families:
        name = fam.name
        if not NAME.match(name):
            problems.append(f"{name}: not projectionist_snake_case")
        if fam.type == "counter" and name.endswith("_total"):
            problems.append(f"{name}: counter family name must not carry _total twice")
        if fam.type != "counter" and name.endswith("_total"):
            problems.append(f"{name}: only counters end in _total")
        if any(bad in name for bad in ("_milliseconds", "_ms", "_minutes", "_kbytes", "_percent")):
            problems.append(f"{name}: not a base unit")
        for word, suffix in UNIT_WORDS.items():
            if word in name.split("_") and not name.endswith(suffix):
                problems.append(f"{name}: a {word} must end in {suffix}")
        if not fam.documentation or not fam.documentation[0].isupper():
            problems.append(f"{name}: help must be a capitalised sentence")
        elif not fam.documentation.rstrip(")").endswith("."):
            problems.append(f"{name}: help must end with a full stop")
    for fam_name, (_kind, _help, labels) in RUNNER_FAMILIES.items():
        if set(labels) & UNBOUNDED_LABELS:
            problems.append(f"{fam_name}: unbounded label {set(labels) & UNBOUNDED_LABELS}")
    metrics = Metrics(CollectorRegistry())
    for attr, value in vars(metrics).items():
        label_names = set(getattr(value, "_labelnames", ()))
        if label_names & UNBOUNDED_LABELS:
            problems.append(f"{attr}: unbounded label {label_names & UNBOUNDED_LABELS}")
    assert not problems, "\n".join(problems)


def test_nothing_is_registered_at_import_or_on_the_global_registry() -> None:
    """Importing every module and building Observability leaves the default registry untouched."""
    import importlib
    import pkgutil

    from prometheus_client import REGISTRY

    import consumers
    from consumers.observability.exporter import Observability
    from consumers.settings.models import Settings

    for module in pkgutil.walk_packages(consumers.__path__, "consumers."):
        importlib.import_module(module.name)
    obs = Observability(Settings(metrics_address="127.0.0.1:0").observability)
    assert not [f.name for f in REGISTRY.collect() if f.name.startswith("projectionist")]
    assert any(f.name == "projectionist_events_received" for f in obs.registry.collect())


def test_runner_families_reconcile_with_run_stats() -> None:
    """Scrape-time counters equal RunStats, and consumed equals the sum of the outcome buckets."""
    runner, _observer, _health, _clock, registry = watched()
    runner.stats = RunStats(
        consumed=20, applied=11, skipped_offset=3, stale=2, ignored=1, dead_lettered=3
    )
    runner.positions = {("blog", 0): 41, ("blog", 1): None}
    runner.lag, runner.high_watermarks = {("blog", 0): 8, ("blog", 1): -1}, {("blog", 0): 50}
    text = generate_latest(registry).decode()

    def value(series: str) -> float:
        match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
        assert match, f"{series} missing in\n{text}"
        return float(match.group(1))

    skipped = sum(
        value(f'projectionist_events_skipped_total{{projection="blog_v1",reason="{r}"}}')
        for r in ("offset", "event_id", "stale_version", "ignored_type")
    )
    consumed = value('projectionist_events_consumed_total{projection="blog_v1"}')
    applied = value('projectionist_events_applied_total{projection="blog_v1"}')
    dead = value('projectionist_events_dead_lettered_total{projection="blog_v1"}')
    assert (consumed, applied, skipped, dead) == (20, 11, 6, 3)
    assert consumed == applied + skipped + dead
    assert value('projectionist_assigned_partitions{projection="blog_v1"}') == 2
    p0 = '{partition="0",projection="blog_v1",topic="blog"}'
    assert value(f"projectionist_checkpoint_offset{p0}") == 41
    assert value(f"projectionist_lag_events{p0}") == 8
    assert value(f"projectionist_high_watermark_offset{p0}") == 50
    assert 'partition="1"' not in text, "unknown lag and no checkpoint must not be exported"


def test_client_statistics_are_parsed_from_librdkafka_json() -> None:
    """Brokers UP, RTT in seconds, queued messages and rx counters come from the stats JSON."""
    raw = json.dumps(
        {
            "rxmsgs": 42,
            "rx_bytes": 4096,
            "brokers": {
                "bootstrap": {"nodeid": -1, "state": "UP", "rtt": {"avg": 1}},
                "b1": {"nodeid": 1, "state": "UP", "rtt": {"avg": 2500}},
                "b2": {"nodeid": 2, "state": "DOWN", "rtt": {"avg": 0}},
            },
            "topics": {"blog": {"partitions": {"0": {"fetchq_cnt": 7}, "-1": {"fetchq_cnt": 99}}}},
        }
    )
    stats = KafkaClientStats.parse(raw, now=5.0)
    assert stats.brokers_up == 1
    assert stats.broker_rtt_s == {"1": 0.0025, "2": 0.0}
    assert (stats.fetch_queue_messages, stats.received_messages, stats.received_bytes) == (
        7,
        42,
        4096,
    )


def test_metrics_address_is_validated() -> None:
    """host:port and :port are accepted; anything else is a configuration error."""
    assert parse_address("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_address(":9100") == ("0.0.0.0", 9100)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("9100", "host:", "host:port", "host:70000"):
        with pytest.raises(ConfigurationError):
            parse_address(bad)


def test_logs_mask_secrets_and_omit_payloads_above_debug() -> None:
    """Secrets are always masked; payload bodies only pass at DEBUG."""
    info = redact(None, "info", {"event": "x", "db_password": "hunter2", "record": {"a": 1}})
    assert info["db_password"] == "**********"
    assert info["record"] != {"a": 1}
    debug = redact(None, "debug", {"event": "x", "record": {"a": 1}})
    assert debug["record"] == {"a": 1}


def test_helpers_for_rebuild_outbox_and_email_export_the_alerted_series() -> None:
    """The helper methods other features call produce the series the alert rules read."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.rebuild_advanced("blog_v2", done=250, total=1_000, now=1_700_000_000.0)
    metrics.outbox_observed("blog", pending=7, oldest_age_s=42.0)
    metrics.relay_publish("blog", "blog.posts", published=5, failed=1)
    metrics.email_outcome("emails_v1", sent=3, failed=2)
    metrics.tag_cloud_checked("blog_v1", drifted_tags=4)
    text = generate_latest(registry).decode()
    for line in (
        'projectionist_rebuild_progress_ratio{projection="blog_v2"} 0.25',
        'projectionist_rebuild_last_progress_timestamp_seconds{projection="blog_v2"} 1.7e+09',
        'projectionist_outbox_pending_events{service="blog"} 7.0',
        'projectionist_outbox_oldest_pending_age_seconds{service="blog"} 42.0',
        'projectionist_relay_published_events_total{service="blog",topic="blog.posts"} 5.0',
        'projectionist_relay_publish_failures_total{service="blog",topic="blog.posts"} 1.0',
        'projectionist_emails_sent_total{projection="emails_v1"} 3.0',
        'projectionist_emails_failed_total{projection="emails_v1"} 2.0',
        'projectionist_tag_cloud_drift_tags{projection="blog_v1"} 4.0',
    ):
        assert line in text, f"{line!r} missing"
    metrics.rebuild_finished("blog_v2")
    text = generate_latest(registry).decode()
    assert 'projectionist_rebuild_last_progress_timestamp_seconds{projection="blog_v2"} 0.0' in text


def test_endpoints_serve_metrics_and_probe_verdicts() -> None:
    """/metrics is Prometheus text, /healthz and /readyz answer 200/503 with reasons, others 404."""
    import urllib.error
    import urllib.request

    from consumers.observability.endpoints import ObservabilityServer

    runner, _observer, health, _clock, registry = watched()
    server = ObservabilityServer(address="127.0.0.1:0", registry=registry, probes=[health])
    server.start()

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()

    try:
        status, text = get("/metrics")
        assert status == 200
        assert 'projectionist_assigned_partitions{projection="blog_v1"} 0.0' in text
        assert get("/healthz") == (200, "blog_v1: ok (ok)\n")
        assert get("/readyz") == (503, "blog_v1: FAIL (no partitions assigned yet)\n")
        runner.positions, runner.ready = {("blog", 0): 1}, True
        assert get("/readyz")[0] == 200
        assert get("/nope")[0] == 404
    finally:
        server.close()


def test_email_outcomes_of_the_delivery_hook_become_counters() -> None:
    """The notifications runner's books (mail_sent / mail_failed) feed the e-mail counters."""
    registry = CollectorRegistry()
    observer = LoopObserver(Metrics(registry))

    def books(sent: int, failed: int) -> RunnerSnapshot:
        stats = RunStats()
        stats.extra.update({"mail_sent": sent, "mail_failed": failed, "mail_retried": 0})
        return RunnerSnapshot(slot="notifications_v1", stats=stats)

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, {"projection": "notifications_v1"})

    observer.polled(books(0, 0))
    assert (
        value("projectionist_emails_sent_total"),
        value("projectionist_emails_failed_total"),
    ) == (0, 0)
    observer.polled(books(3, 1))
    observer.polled(books(5, 1))
    assert (
        value("projectionist_emails_sent_total"),
        value("projectionist_emails_failed_total"),
    ) == (5, 1)
    observer.polled(RunnerSnapshot(slot="blog_v1"))  # no mail in these books: no series
    assert (
        registry.get_sample_value("projectionist_emails_sent_total", {"projection": "blog_v1"})
        is None
    )


def test_service_probes_follow_the_loop_and_the_database() -> None:
    """A relay-like loop: not ready until its first round or while a round fails; liveness
    fails when no round ended for the stall timeout."""
    from consumers.observability.service import ServiceHealth

    now = [0.0]
    down: list[str] = []

    def ping() -> None:
        if down:
            raise ConnectionError(down[0])

    health = ServiceHealth(
        "outbox-relay", ping_database=ping, stall_timeout_s=60, has_loop=True, clock=lambda: now[0]
    )
    assert not health.readiness().ok
    health.beat()
    assert health.readiness().ok
    assert health.liveness().ok
    health.beat("BrokerUnavailable: no broker")
    assert health.readiness() == type(health.readiness())(
        False, "retrying: BrokerUnavailable: no broker"
    )
    health.beat()
    down.append("refused")
    assert "database unreachable" in health.readiness().reason
    now[0] = 61.0
    assert not health.liveness().ok


def test_status_endpoint_serves_the_document_and_its_errors_as_json() -> None:
    """/status?projection=… hands the names to the status source and answers its document;
    an unknown projection is 404 and a database or broker away is 503, both JSON."""
    import urllib.error
    import urllib.request

    from consumers.observability.endpoints import ObservabilityServer
    from schemas.errors import DatabaseUnavailable

    asked: list[object] = []
    failure: list[Exception] = []

    def status(names: object) -> dict[str, Any]:
        asked.append(names)
        if failure:
            raise failure[0]
        return {"projections": [{"projection": "blog", "paused": None}]}

    _runner, _observer, health, _clock, registry = watched()
    server = ObservabilityServer(
        address="127.0.0.1:0", registry=registry, probes=[health], status=status
    )
    server.start()

    def get(path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    try:
        assert get("/status") == (200, {"projections": [{"projection": "blog", "paused": None}]})
        assert get("/status?projection=blog&projection=orders")[0] == 200
        assert asked == [None, ["blog", "orders"]]
        failure.append(LookupError("unknown projection 'nope'"))
        code, body = get("/status?projection=nope")
        assert (code, body["error"]) == (404, "unknown_projection")
        failure[0] = DatabaseUnavailable("connection refused")
        code, body = get("/status")
        assert (code, body["error"]) == (503, "unavailable")
        assert "connection refused" in body["detail"]
        failure[0] = ConfigurationError("no Kafka to talk to")
        code, body = get("/status")
        assert (code, body["error"]) == (503, "unavailable"), "a setting is not a missing name"
    finally:
        server.close()
