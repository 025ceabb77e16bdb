"""The dev overlay run on one machine for tests/system/test_deployment.py: what the
``deployed`` fixture (tests/system/conftest.py) hands the test, and the test's helpers."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from consumers.kafka.config import producer_config
from consumers.kafka.watermarks import FetchedWatermarks
from consumers.settings.models import Settings
from producers import SampleEvent
from schemas import AvroSerde, SchemaCatalog
from tests.support.prometheus import PrometheusServer, http_get
from tests.support.proxy import TcpProxy
from tests.support.servers import RecordingSmtp
from tests.system.kubelet import Kubelet, Pod

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
# The embedded broker answers a group join in about half the session timeout: the test
# broker's knobs, as in every other tier (a real cluster keeps the shipped 15 s / 3 s).
BROKER_SPEED = {
    "PROJECTIONIST_SESSION_TIMEOUT_MS": "6000",
    "PROJECTIONIST_HEARTBEAT_INTERVAL_MS": "500",
}


@dataclass
class Deployed:
    kubelet: Kubelet
    prometheus: PrometheusServer
    proxy: TcpProxy
    bootstrap: str
    read_models_url: str
    targets_file: Path
    pods: dict[str, Pod]
    smtp: RecordingSmtp

    def scraped(self) -> None:
        """What service discovery would list: every running pod's metrics port."""
        groups = [
            {"targets": [f"127.0.0.1:{p.ports['metrics']}"], "labels": {"pod": p.name}}
            for p in self.kubelet.running()
            if "metrics" in p.ports
        ]
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.targets_file)


def prometheus_config(targets_file: Path, rules: Path) -> dict[str, Any]:
    shipped = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    shipped["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    shipped["rule_files"] = [str(rules)]
    (job,) = shipped["scrape_configs"]
    assert job["job_name"] == "projectionist"
    del job["static_configs"]
    job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
    return shipped


def accept_any(*_args: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=True)


def host_port(url: str) -> tuple[str, int]:
    u = sa.engine.make_url(url)
    return u.host or "127.0.0.1", u.port or 5432


def via_proxy(url: str, port: int) -> str:
    return sa.engine.make_url(url).set(host="127.0.0.1", port=port).render_as_string(False)


def pod_ready(pod: Pod) -> bool:
    return pod.alive() and pod.probe("readiness") == 200 and pod.probe("liveness") == 200


def run_job(
    d: Deployed, kind: str, name: str, *, args: list[str] | None = None, watch: str = ""
) -> Pod:
    """Run a Job's (or a CronJob template's) container to completion; with ``watch``, poll
    its /metrics meanwhile and require that series to have been exported."""
    pod = d.kubelet.pod(kind, name, args=args).start()
    d.scraped()
    seen = False
    while watch and pod.alive() and not seen:
        seen = f"\n{watch}{{" in http_get(f"{pod.url('metrics')}/metrics", timeout_s=1)[1]
        time.sleep(0.02)
    assert seen or not watch, f"{pod.name} never exported {watch}"
    code = pod.wait(timeout_s=120)  # far below every Job's activeDeadlineSeconds
    d.scraped()
    assert code == 0, f"{pod.name} exited {code}:\n{pod.output[-3000:]}"
    return pod


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """What KEDA's kafka trigger computes: high watermarks minus the group's commits."""
    marks = FetchedWatermarks({"bootstrap.servers": bootstrap}).watermarks([topic])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = [TopicPartition(topic, p) for (_t, p) in marks]
    from confluent_kafka import ConsumerGroupTopicPartitions

    (future,) = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, request)]
    ).values()
    committed = {tp.partition: tp.offset for tp in future.result().topic_partitions}
    return sum(
        m.high - (committed[p] if committed.get(p, -1) >= 0 else 0) for (_t, p), m in marks.items()
    )


def publish_aged(bootstrap: str, topic: str, events: list[SampleEvent], *, age_s: int) -> None:
    """Publish ``events`` with a record timestamp ``age_s`` in the past (what the event-age
    histogram measures): events that reach the broker late, e.g. from a lagging producer."""
    producer = Producer(producer_config(Settings(bootstrap_servers=bootstrap).kafka))
    serde = AvroSerde(SchemaCatalog.load())
    then_ms = int(time.time() * 1000) - age_s * 1000
    for ev in events:
        producer.produce(
            topic,
            key=ev.key.encode(),
            value=serde.encode(ev.event_type, ev.record),
            headers=[
                ("event_id", str(ev.record["event_id"]).encode()),
                ("event_type", ev.event_type.encode()),
                ("occurred_at", str(then_ms).encode()),
            ],
            timestamp=then_ms,
        )
    assert producer.flush(30) == 0


def rebuild_progress(pod: Pod) -> float:
    _status, text = http_get(f"{pod.url('metrics')}/metrics", timeout_s=1)
    ratios = [
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("projectionist_rebuild_progress_ratio{")
    ]
    return min(ratios, default=0.0)


def alert_rule(alert: str) -> dict[str, Any]:
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == alert]
    return dict(rule)


def assigned_partitions(pod: Pod) -> int:
    _status, text = http_get(f"{pod.url('metrics')}/metrics")
    return int(
        sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("projectionist_assigned_partitions{")
        )
    )


def tag_cloud_of(url: str, generation: int) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    f"SELECT tag, posts_count FROM tag_cloud_v{generation} WHERE posts_count > 0"
                )
            ).all()
    finally:
        engine.dispose()
    return {t: int(n) for t, n in rows}


def dashboard_queries() -> list[str]:
    board = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$projection", ".*")
            out.append(expr)
    return out
