"""The deployment itself: the dev overlay's workloads run as a kubelet would, over a lifecycle.

Every Deployment, StatefulSet, Job and CronJob of ``deploy/k8s/overlays/dev`` runs its
container's args with the environment the manifests give it (``tests/system/kubelet.py``
lists the only rewrites: loopback ports instead of one port per pod, the pod's directory
for mounts, the test's broker and SMTP server for cluster names), against a broker of
this module, PostgreSQL with the roles of ``deploy/sql/roles.sql`` behind a TCP proxy (to
cut it), and a real Prometheus loading the shipped ``prometheus.yml`` (targets from a
file, as service discovery gives them; 1 s intervals) and ``alerts.yml``.

The walk: install (the migrate Job) → every workload ready → produce (directly and
through the outbox relay) → consume → rebuild (the CronJob template) → the API answers
from the new generation → reconcile → rollback → cleanup → scale up/down (hand-over
measured) → database outage → recover → poison → SIGTERM within the grace period.

Alerts whose ``for`` is minutes (ConsumerDown 2m, NotReady 10m, LagGrowing 10m, …) are
not waited for: their expression is evaluated through the query API in the scenario and
their ``for`` is checked against the file; alerts without ``for`` must fire for real.
The prod overlay (SASL_SSL, KEDA) cannot run against the test broker: from it, the KEDA
trigger's group and topic are taken and their lag computed on the live run.
"""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from consumers.kafka.broker import free_port
from producers import blog_events, order_events
from tests.support import run_cli, wait_for
from tests.support.broker import publish, publish_poison
from tests.support.oracle import blog_actual, blog_oracle
from tests.support.prometheus import http_get
from tests.system.deployed import (
    Deployed,
    alert_rule,
    assigned_partitions,
    dashboard_queries,
    group_lag,
    pod_ready,
    publish_aged,
    rebuild_progress,
    run_job,
    tag_cloud_of,
)
from tests.system.kubelet import find
from tests.unit.test_deploy_manifests import render

WORKLOADS = [
    ("StatefulSet", "projectionist-blog"),
    ("StatefulSet", "projectionist-orders"),
    ("StatefulSet", "projectionist-notifications"),
    ("Deployment", "projectionist-query-api"),
    ("Deployment", "projectionist-outbox-relay"),
    ("Deployment", "projectionist-tag-cloud-check"),
]
# Alerts driven into their scenario below (each expression read from alerts.yml).
SCENARIO_ALERTS = [
    "ProjectionistStalled",
    "ProjectionistTagCloudDrift",
    "ProjectionistEventAgeAboveSLO",
    "ProjectionistOutboxBacklog",
]
STALL_TIMEOUT_S = 5


def test_the_dev_overlay_over_its_lifecycle(deployed: Deployed) -> None:
    """Install, produce, consume, rebuild, reconcile, rollback, cleanup, scale, outage,
    recover, poison, stop: probes, API, autoscaler lag and alerts checked at each step."""
    d = deployed
    k = d.kubelet
    prom = d.prometheus

    # -- install: `kubectl apply` starts everything at once; before the schema step the
    #    API is alive and not ready, and a consumer stops with one line (exit 2) -------
    api_pod = d.pods["projectionist-query-api"] = k.pod(*WORKLOADS[3]).start()
    wait_for("the API's liveness", lambda: api_pod.probe("liveness") == 200, timeout_s=30)
    assert api_pod.probe("readiness") == 503, "ready before its read models exist"
    early = k.pod("StatefulSet", "projectionist-blog").start()
    assert early.wait(timeout_s=60) == 2, early.output[-3000:]
    assert "projectionist migrate" in early.output.strip().splitlines()[-1]
    run_job(d, "Job", "projectionist-migrate")
    for kind, name in WORKLOADS:
        if name not in d.pods:
            d.pods[name] = k.pod(kind, name).start()
    d.scraped()
    for name, pod in d.pods.items():
        budget = pod.container.get("startupProbe", {})
        wait_for(
            f"{name} ready",
            lambda pod=pod: pod_ready(pod) or (not pod.alive() and pytest.fail(pod.output[-3000:])),
            timeout_s=float(budget.get("periodSeconds", 10) * budget.get("failureThreshold", 6)),
            every_s=0.5,
        )
    wait_for(
        'up{job="projectionist"} for every pod',
        lambda: len(prom.query('up{job="projectionist"} == 1')) == len(d.pods),
        timeout_s=30,
    )

    # -- produce: directly, and commands through the outbox and the relay -------------
    events = blog_events(posts=120, seed=2026)
    publish(d.bootstrap, "blog.posts", events)
    relay_env = {
        "PROJECTIONIST_COMMAND_DATABASE_URL": k.secrets["projectionist-db"]["outbox-url"],
        "PROJECTIONIST_BOOTSTRAP_SERVERS": d.bootstrap,
    }
    made = run_cli(["produce", "--count", "30", "--no-relay", "--seed", "7"], env=relay_env)
    assert made.returncode == 0, made.stderr[-2000:]
    relay = d.pods["projectionist-outbox-relay"]
    wait_for(
        "the relay to publish the outbox",
        lambda: sum(prom.query("projectionist_relay_published_events_total").values()) >= 30,
        timeout_s=60,
    )
    wait_for(  # the gauge is measured every few seconds, the counter at each publish
        "the outbox backlog gauge to read 0",
        lambda: prom.query("max(projectionist_outbox_pending_events)") == {"": 0.0},
        timeout_s=30,
    )

    # -- consume: the API answers what the oracle says --------------------------------
    api = d.pods["projectionist-query-api"].url("http")
    oracle = blog_oracle(events)
    some = sorted(oracle.live)[:5]
    wait_for(
        "the API to serve the published posts",
        lambda: all(http_get(f"{api}/posts/{pid}")[0] == 200 for pid in some),
        timeout_s=90,
    )
    actual = blog_actual(d.read_models_url)
    assert {p: actual.live.get(p) for p in oracle.live} == oracle.live
    keda = find(render("prod"), "ScaledObject", "projectionist-blog")["spec"]["triggers"][0]
    group, topic = keda["metadata"]["consumerGroup"], keda["metadata"]["topic"]
    assert topic == "blog.posts"
    wait_for("the live group's lag at 0", lambda: group_lag(d.bootstrap, group, topic) == 0)
    assert relay.alive()
    assert prom.firing() == set(), "a healthy install fires no alert"
    for alert in SCENARIO_ALERTS:  # their `for` is minutes: silence is their expression's
        assert prom.query(alert_rule(alert)["expr"]) == {}, f"{alert} holds on a healthy install"

    # -- rebuild (the CronJob's template, as `kubectl create job --from` runs it) ------
    engine = sa.create_engine(d.read_models_url)
    with engine.begin() as conn:  # damage generation 1: the rebuild must repair it
        conn.execute(sa.text("UPDATE tag_cloud_v1 SET posts_count = posts_count + 100"))
    engine.dispose()
    run_job(
        d, "CronJob", "projectionist-rebuild-blog", watch="projectionist_rebuild_progress_ratio"
    )
    tags = json.loads(http_get(f"{api}/tags?limit=500")[1])
    expected_cloud = tag_cloud_of(d.read_models_url, 2)
    wait_for(
        "the API to answer from generation 2",
        lambda: (
            {t["tag"]: t["posts_count"] for t in json.loads(http_get(f"{api}/tags?limit=500")[1])}
            == expected_cloud
        ),
        timeout_s=30,
    )
    assert tags is not None
    more = blog_events(posts=30, seed=2027)
    publish(d.bootstrap, "blog.posts", more)
    wait_for(
        "the live group to follow generation 2 (KEDA's lag back to 0)",
        lambda: group_lag(d.bootstrap, group, topic) == 0,
        timeout_s=90,
    )
    wait_for(
        "the blog consumer ready on generation 2",
        lambda: prom.query('projectionist_ready{projection="blog_v2"} == 1'),
        timeout_s=60,
    )

    # -- reconcile (the CronJob with --repair) and the report-only check ---------------
    run_job(d, "CronJob", "projectionist-reconcile-tag-cloud")
    assert prom.query("max(projectionist_tag_cloud_drift_tags)") in ({"": 0.0}, {})

    # -- a damaged tag cloud: the tag-cloud-check Deployment (it checks at start, then
    #    every 300 s: restarted here) -> ProjectionistTagCloudDrift's expression ------
    drift = alert_rule("ProjectionistTagCloudDrift")
    assert drift["for"] == "30m"
    assert prom.query(drift["expr"]) == {}
    engine = sa.create_engine(d.read_models_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE tag_cloud_v2 SET posts_count = posts_count + 1"))
    engine.dispose()
    assert d.pods["projectionist-tag-cloud-check"].terminate() == 0
    d.pods["projectionist-tag-cloud-check"] = k.pod(*WORKLOADS[5]).start()
    d.scraped()
    wait_for("TagCloudDrift's expression to hold", lambda: prom.query(drift["expr"]), timeout_s=60)

    # -- rollback and cleanup (operator commands, the rebuild Job's environment) ------
    run_job(d, "CronJob", "projectionist-rebuild-blog", args=["rollback", "blog"])
    wait_for(
        "the blog consumer back on generation 1",
        lambda: prom.query('projectionist_ready{projection="blog_v1"} == 1'),
        timeout_s=90,
    )
    cleaned = run_job(d, "CronJob", "projectionist-rebuild-blog", args=["cleanup", "blog"])
    assert "dropped generation(s) 2" in cleaned.output
    assert "projectionist.blog_v2" in cleaned.output
    wait_for(
        "KEDA's lag at 0 after the rollback",
        lambda: group_lag(d.bootstrap, group, topic) == 0,
        timeout_s=90,
    )

    # -- scale up to 2, then down to 1: the hand-over is measured ----------------------
    second = k.pod("StatefulSet", "projectionist-blog", ordinal=1)
    # the one shipped setting shortened here: /healthz's stall clock (120 s in a cluster)
    second.env["PROJECTIONIST_STALL_TIMEOUT_S"] = str(STALL_TIMEOUT_S)
    second.start()
    d.scraped()
    wait_for("a second blog member ready", lambda: pod_ready(second), timeout_s=120, every_s=0.5)
    wait_for(
        "both members own partitions",
        lambda: len(prom.query("projectionist_assigned_partitions > 0")) >= 2,
        timeout_s=60,
    )

    # -- an apply that hangs (the read models locked): ProjectionistStalled's expression
    stalled = alert_rule("ProjectionistStalled")
    assert stalled["for"] == "1m"
    live = second.container["livenessProbe"]  # the alert fires before the restart
    assert live["periodSeconds"] * live["failureThreshold"] > 60 + 1
    assert prom.query(stalled["expr"]) == {}
    locker = sa.create_engine(d.read_models_url)
    with locker.connect() as conn:
        tables = conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename LIKE '%\\_v1'"
            )
        ).scalars()
        conn.execute(sa.text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
        held = blog_events(posts=20, seed=2031)
        publish(d.bootstrap, "blog.posts", held)
        wait_for(
            "ProjectionistStalled's expression to hold",
            lambda: prom.query(stalled["expr"]),
            timeout_s=60,
        )
        conn.rollback()
    locker.dispose()
    wait_for(
        "ProjectionistStalled's expression silent once unlocked",
        lambda: not prom.query(stalled["expr"]),
        timeout_s=30,
    )

    first = d.pods["projectionist-blog"]
    stopped_at = time.monotonic()
    assert second.terminate() == 0, second.output[-3000:]
    grace = float(second.spec["terminationGracePeriodSeconds"])
    assert second.stopped_in_s is not None
    assert second.stopped_in_s < grace
    wait_for(
        "the remaining member to own every partition",
        lambda: assigned_partitions(first) == 4,
        timeout_s=60,
        every_s=0.2,
    )
    handover_s = time.monotonic() - stopped_at
    print(f"scale-down hand-over: {handover_s:.1f} s")  # the README quotes this figure
    d.scraped()

    # -- database outage: not ready (NotReady's expression), lag keeps counting --------
    d.proxy.cut()
    outage = blog_events(posts=350, seed=2028)  # > 1000 events: ProjectionistLagGrowing
    for start in range(0, len(outage), 50):  # small produce batches (see the broker notes)
        publish(d.bootstrap, "blog.posts", outage[start : start + 50])
    wait_for("blog not ready", lambda: first.probe("readiness") == 503, timeout_s=60)
    assert first.probe("liveness") == 200, "an outage is no reason to restart"
    assert alert_rule("ProjectionistNotReady")["for"] == "10m"
    wait_for(
        "ProjectionistNotReady's expression to hold",
        lambda: prom.query('max by (projection) (projectionist_ready{projection="blog_v1"}) == 0'),
        timeout_s=30,
    )
    wait_for(
        "the lag to count the events of the outage",
        lambda: sum(prom.query('projectionist_lag_events{projection="blog_v1"}').values()) > 0,
        timeout_s=30,
    )
    assert group_lag(d.bootstrap, group, topic) > 1000, "KEDA sees the backlog"
    growing = alert_rule("ProjectionistLagGrowing")
    assert growing["for"] == "10m"
    wait_for(
        "ProjectionistLagGrowing's expression to hold",
        lambda: prom.query(growing["expr"]),
        timeout_s=30,
    )
    d.proxy.restore()
    wait_for("blog ready again", lambda: pod_ready(first), timeout_s=90)
    wait_for(
        "KEDA's lag at 0 after the outage",
        lambda: group_lag(d.bootstrap, group, topic) == 0,
        timeout_s=90,
    )
    assert (
        blog_actual(d.read_models_url).live.keys()
        >= blog_oracle(events + more + held + outage).live.keys()
    )

    # -- poison: ProjectionistDeadLetters (no `for`) fires for real ---------------------
    assert "ProjectionistDeadLetters" not in prom.firing()
    publish_poison(d.bootstrap, "blog.posts", 2)
    wait_for(
        "ProjectionistDeadLetters to fire",
        lambda: "ProjectionistDeadLetters" in prom.firing(),
        timeout_s=60,
    )

    # -- orders and their e-mails; one address refused: ProjectionistEmailFailures ----
    orders = order_events(orders=12, seed=2029)
    refused = orders[3].record["customer_email"]
    d.smtp.reject[refused] = "550 5.1.1 no such mailbox"
    publish(d.bootstrap, "orders.orders", orders)
    to_others = sum(1 for e in orders if e.record["customer_email"] != refused)
    wait_for("the other e-mails sent", lambda: len(d.smtp.received) >= to_others, timeout_s=90)
    wait_for(
        "ProjectionistEmailFailures to fire",
        lambda: "ProjectionistEmailFailures" in prom.firing(),
        timeout_s=60,
    )
    assert all(r.recipients != [refused] for r in d.smtp.received)
    order = orders[0].record["order_id"]
    assert http_get(f"{api}/orders/{order}")[0] == 200

    # -- events that arrive 10 min late: ProjectionistEventAgeAboveSLO's expression -----
    age = alert_rule("ProjectionistEventAgeAboveSLO")
    assert age["for"] == "5m"
    assert prom.query(age["expr"]) == {}
    publish_aged(d.bootstrap, "blog.posts", blog_events(posts=60, seed=2030), age_s=600)
    wait_for("EventAgeAboveSLO's expression to hold", lambda: prom.query(age["expr"]), timeout_s=60)

    # -- the relay restarted while the broker is away, commands waiting for 10 min:
    #    ProjectionistOutboxBacklog's expression; silent again once a relay publishes --
    backlog = alert_rule("ProjectionistOutboxBacklog")
    assert backlog["for"] == "5m"
    assert prom.query(backlog["expr"]) == {}
    assert d.pods.pop("projectionist-outbox-relay").terminate() == 0
    made = run_cli(["produce", "--count", "5", "--no-relay", "--seed", "8"], env=relay_env)
    assert made.returncode == 0, made.stderr[-2000:]
    command_db = sa.create_engine(relay_env["PROJECTIONIST_COMMAND_DATABASE_URL"])
    with command_db.begin() as conn:  # written 10 minutes ago (the wait is not spent here)
        conn.execute(
            sa.text(
                "UPDATE outbox SET occurred_at_ms = occurred_at_ms - 600000"
                " WHERE published_at IS NULL"
            )
        )
    command_db.dispose()
    stuck = k.pod(*WORKLOADS[4])
    stuck.env["PROJECTIONIST_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"  # nobody there
    d.pods["projectionist-outbox-relay"] = stuck.start()
    d.scraped()
    wait_for(
        "OutboxBacklog's expression to hold", lambda: prom.query(backlog["expr"]), timeout_s=90
    )
    assert stuck.terminate() == 0, stuck.output[-3000:]
    d.pods["projectionist-outbox-relay"] = k.pod(*WORKLOADS[4]).start()
    d.scraped()
    wait_for(
        "OutboxBacklog's expression silent once published",
        lambda: (
            prom.query("max(projectionist_outbox_pending_events)") == {"": 0.0}
            and not prom.query(backlog["expr"])
        ),
        timeout_s=90,
    )

    # -- a pod that dies: ProjectionistConsumerDown's expression (its `for` is 2m) -------
    check = d.pods.pop("projectionist-tag-cloud-check")
    check.kill()
    wait_for(
        "up == 0 for the dead pod",
        lambda: prom.query(f'up{{job="projectionist",pod="{check.name}"}} == 0'),
        timeout_s=30,
    )
    assert alert_rule("ProjectionistConsumerDown")["for"] == "2m"

    # -- every dashboard query has had data during the walk ---------------------------
    # (the rebuild panel's series lives in the rebuild Job's pod, which a rebuild of this
    # size leaves between two scrapes: its export was checked on the pod itself above)
    queries = [q for q in dashboard_queries() if q != "projectionist_rebuild_progress_ratio"]
    empty = [q for q in queries if not prom.query(f"count_over_time(({q})[10m:1s])")]
    assert not empty, f"dashboard queries without data: {empty}"

    # -- a rebuild held part-way by a database outage: ProjectionistRebuildStuck --------
    held_rule = alert_rule("ProjectionistRebuildStuck")
    assert held_rule["for"] == "5m"
    rebuild = k.pod(
        "CronJob",
        "projectionist-rebuild-blog",
        args=["rebuild", "blog", "--batch-max-messages", "50"],  # many small steps
    ).start()
    d.scraped()
    wait_for(
        "the rebuild part-way",
        lambda: not rebuild.alive() or 0 < rebuild_progress(rebuild) < 1,
        timeout_s=60,
        every_s=0.01,
    )
    d.proxy.cut()
    wait_for(
        "Prometheus to scrape the held rebuild",
        lambda: prom.query("projectionist_rebuild_progress_ratio < 1"),
        timeout_s=30,
    )
    assert rebuild.alive(), rebuild.output[-3000:]
    assert prom.query(held_rule["expr"]) == {}, "stuck before 15 min without progress"
    assert prom.query(held_rule["expr"], at=time.time() + 16 * 60), "RebuildStuck silent"
    d.proxy.restore()
    assert rebuild.wait(timeout_s=120) == 0, rebuild.output[-3000:]
    d.scraped()

    # -- SIGTERM: every pod stops in its grace period, exit 0 --------------------------
    for name, pod in d.pods.items():
        assert pod.terminate() == 0, f"{name}: {pod.output[-3000:]}"
        assert pod.stopped_in_s is not None
        assert pod.stopped_in_s < float(pod.spec["terminationGracePeriodSeconds"]), name
