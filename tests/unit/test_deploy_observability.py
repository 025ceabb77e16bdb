"""deploy/observability stays true to the code: promtool passes, every metric named exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import missing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "observability"
METRIC = re.compile(r"\bprojectionist_[a-z0-9_]+\b")
# a histogram is also named by its family name (prose, tables)
SUFFIXES = {"counter": ("_total",), "histogram": ("", "_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_series_names() -> set[str]:
    """What a process's registry exports (as built by every command: metrics, the
    runner collector, build info, process collectors)."""
    from consumers.observability.exporter import Observability
    from consumers.settings.concerns import ObservabilitySettings

    registry = Observability(ObservabilitySettings()).registry
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        missing("promtool is not installed (make tools-prometheus installs it)")
    return subprocess.run(
        [str(binary), *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120, check=False
    )


def test_alert_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the alert rules and the example scrape config."""
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_alert_rules_fire_on_synthetic_series() -> None:
    """`promtool test rules`: each alert fires (and stays silent) where its test says."""
    result = promtool("test", "rules", "alerts-test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "alerts-test.yml").read_text()))
    defined = set(re.findall(r"- alert: (\w+)", (DEPLOY / "alerts.yml").read_text()))
    assert defined == tested, f"alerts without a unit test: {defined - tested}"


@pytest.mark.parametrize(
    "path",
    ["alerts.yml", "alerts-test.yml", "grafana-dashboard.json", "../../README.md"],
)
def test_every_metric_named_in_deploy_and_readme_exists(path: str) -> None:
    """Dashboards, alerts and the README name only series the code exports."""
    text = (DEPLOY / path).read_text()
    if path.endswith("README.md"):  # metric names live in its Observability section
        text = text.split("## Observability", 1)[1].split("\n## ", 1)[0]
    named = {name for name in METRIC.findall(text) if not name.endswith("_")}  # "kafka_*" prose
    assert named, f"{path} names no metric"
    unknown = sorted(named - exported_series_names())
    assert not unknown, f"{path} names metrics the code does not export: {unknown}"


def test_dashboard_covers_what_operators_watch() -> None:
    """The Grafana dashboard has lag, throughput, event age, errors, DLQ and rebuild panels."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needed in (
        "projectionist_lag_events",
        "projectionist_events_applied_total",
        "projectionist_event_age_seconds_bucket",
        "projectionist_transaction_retries_total",
        "projectionist_events_dead_lettered_total",
        "projectionist_rebuild_progress_ratio",
    ):
        assert needed in exprs, f"dashboard has no panel on {needed}"
    assert all(p["targets"] for p in panels), "every panel queries something"
