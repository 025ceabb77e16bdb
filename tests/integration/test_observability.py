"""A real Prometheus scrapes a running consumer; metric values reconcile with the run and oracle."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from consumers.kafka.broker import free_port
from producers import blog_events, with_noise
from tests.support import checkpoint_total, json_line, run_cli, start_cli, wait_for
from tests.support.broker import publish, publish_poison
from tests.support.oracle import blog_actual, blog_oracle
from tests.support.prometheus import PrometheusServer
from tests.support.runners import SLOT


def test_prometheus_scrapes_applied_events_and_lag(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    """A real Prometheus scrapes `consume`; its counters reconcile with the run's books and oracle."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    events = with_noise(blog_events(posts=60, seed=11), duplicate_ratio=0.1, seed=11)
    publish(bootstrap, topic, events)
    publish_poison(bootstrap, topic, 3)
    total = len(events) + 3
    port = free_port()
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": sqlite_url,
        "PROJECTIONIST_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "PROJECTIONIST_KAFKA_STATISTICS_INTERVAL_MS": "1000",
    }
    sel = f'{{projection="{SLOT}"}}'
    with PrometheusServer(tmp_path, targets=[f"127.0.0.1:{port}"]) as prom:
        proc = start_cli(["consume", "blog", "--json"], env=env)
        try:
            wait_for(
                "every message checkpointed",
                lambda: proc.poll() is not None or checkpoint_total(sqlite_url, SLOT) == total,
                timeout_s=90,
            )
            assert proc.poll() is None, "consumer exited early"

            def scraped_all() -> bool:
                consumed = prom.query(f"projectionist_events_consumed_total{sel}")
                lag = prom.query(f"projectionist_lag_events{sel}")
                return list(consumed.values()) == [total] and len(lag) == 4

            wait_for(
                "Prometheus to scrape the caught-up consumer",
                scraped_all,
                timeout_s=60,
                every_s=0.5,
            )
            applied = prom.query(f"projectionist_events_applied_total{sel}")
            skipped = prom.query(f"sum(projectionist_events_skipped_total{sel})")
            dead = prom.query(f"projectionist_events_dead_lettered_total{sel}")
            lag = prom.query(f"projectionist_lag_events{sel}")
            high = prom.query(f"sum(projectionist_high_watermark_offset{sel})")
            received = prom.query(f"sum(projectionist_events_received_total{sel})")
            up = prom.query('up{job="projectionist"}')
            ready = prom.query(f"projectionist_ready{sel}")
            brokers = prom.query(f"projectionist_kafka_brokers_up{sel}")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    stats = json_line(out)
    assert list(up.values()) == [1.0]
    assert list(lag.values()) == [0.0] * 4, lag
    assert list(high.values()) == [total], "high watermarks sum to every message published"
    assert list(dead.values()) == [3.0] == [stats["dead_lettered"]]
    assert list(applied.values()) == [stats["applied"]]
    assert stats["consumed"] == total
    assert total == sum(applied.values()) + sum(skipped.values()) + sum(dead.values())
    assert list(received.values()) == [len(events)], "every decodable event reached apply"
    assert list(ready.values()) == [1.0]
    assert list(brokers.values()) == [1.0], "librdkafka statistics feed client gauges"
    assert blog_actual(sqlite_url) == blog_oracle(events)
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert logs, err[-2000:]
    # the name until the runner knows its generation (start-up lines), then the slot
    missing = [e for e in logs if e.get("projection") not in (SLOT, SLOT.partition("_v")[0])]
    assert not missing, f"projection is in every line: {missing[:3]}"
    dead_logged = [entry for entry in logs if entry["event"] == "dead-lettered"]
    assert len(dead_logged) == 3
    for entry in dead_logged:
        assert entry["topic"] == topic
        assert isinstance(entry["partition"], int)
        assert isinstance(entry["offset"], int)
        assert "event_id" in entry
    assert "not avro" not in err, "payload bodies never reach INFO logs"


def test_bad_metrics_address_is_one_line_and_exit_2() -> None:
    """A malformed PROJECTIONIST_METRICS_ADDRESS fails before Kafka is touched: one line, exit 2."""
    result = run_cli(
        ["consume", "blog", "-b", "127.0.0.1:1"],
        env={"PROJECTIONIST_METRICS_ADDRESS": "localhost", "PROJECTIONIST_LOG_FORMAT": "json"},
        timeout_s=60,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "metrics address 'localhost' is not host:port" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
