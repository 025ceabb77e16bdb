"""Proof from outside: the CRM example package (its own pyproject, schemas, a code and a
declarative projection) driven end to end against the real broker and PostgreSQL.

produce → topics → consume (both projections, metrics and probes on one) → query →
dead letters → rebuild → re-published stale versions and a replay that must not
overwrite newer rows → rollback. Every table is compared with an oracle computed here
from the events produced.
"""

from __future__ import annotations

import json
import random
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from confluent_kafka.admin import AdminClient

from consumers.app import schema_catalog
from consumers.kafka.admin import purge_topics
from consumers.kafka.broker import free_port
from consumers.kafka.config import client_config, producer_config
from consumers.kafka.dead_letters import dead_letter_topic
from consumers.settings.models import load_settings
from producers import EventPublisher
from schemas import AvroSerde
from tests.support import checkpoint_total, json_line, run_cli, start_cli, wait_for
from tests.support.broker import publish_poison
from tests.support.prometheus import http_get

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "crm"
TOPIC = "crm.customers"  # the example's own topic (its class and its TOML say so)
UPDATED, DELETED = "crm.CustomerUpdated", "crm.CustomerDeleted"
T0 = datetime(2026, 6, 1, tzinfo=UTC)
Event = tuple[str, dict[str, Any]]


def _history(rng: random.Random, customers: int) -> list[Event]:
    """Customers whose versions arrive out of order; some deleted (also out of order)."""
    events: list[Event] = []
    for i in range(customers):
        cid = f"cust-{i:04}"
        versions = list(range(1, rng.randint(2, 5)))
        rng.shuffle(versions)
        mine: list[Event] = [
            (
                UPDATED,
                {
                    "event_id": str(uuid.uuid4()),
                    "customer_id": cid,
                    "name": f"{cid} v{v}",
                    "email": f"{cid}.{v}@example.com",
                    "country": rng.choice(["DE", "FR", "NL"]),
                    "version": v,
                    "updated_at": T0 + timedelta(hours=i, minutes=v),
                },
            )
            for v in versions
        ]
        if rng.random() < 0.25:
            mine.insert(
                rng.randint(1, len(mine)),
                (
                    DELETED,
                    {
                        "event_id": str(uuid.uuid4()),
                        "customer_id": cid,
                        "version": max(versions) + 1,
                        "deleted_at": T0 + timedelta(days=3),
                    },
                ),
            )
        events += mine
    return events


def _customers_oracle(events: list[Event]) -> dict[str, tuple[Any, ...]]:
    best: dict[str, tuple[tuple[int, bool], tuple[Any, ...]]] = {}
    for kind, r in events:
        deleted = kind == DELETED
        rank = (r["version"], deleted)
        row = (r["version"], deleted) + (
            (None, None, None) if deleted else (r["name"], r["email"], r["country"])
        )
        if r["customer_id"] not in best or rank > best[r["customer_id"]][0]:
            best[r["customer_id"]] = (rank, row)
    return {cid: row for cid, (_, row) in best.items()}


def _signups_oracle(events: list[Event]) -> dict[str, int]:
    first: dict[str, str] = {}
    for kind, r in events:  # one customer's events share a partition: production order
        if kind == UPDATED:
            first.setdefault(r["customer_id"], r["country"])
    return {c: list(first.values()).count(c) for c in set(first.values())}


def _customers(url: str) -> dict[str, tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT customer_id, version, _deleted, name, email, country FROM crm_customers"
                )
            )
            return {r[0]: tuple(r[1:]) for r in rows}
    finally:
        engine.dispose()


def _signups(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT country, customers FROM crm_signups_by_country"))
            return {r[0]: int(r[1]) for r in rows}
    finally:
        engine.dispose()


def _publish(env: dict[str, str], events: list[Event]) -> None:
    settings = load_settings(bootstrap_servers=env["PROJECTIONIST_BOOTSTRAP_SERVERS"])
    # the example's schemas come from its entry point, as in the consumer
    serde = AvroSerde(schema_catalog(settings.extensions))
    publisher = EventPublisher(producer_config(settings.kafka), serde=serde)
    for kind, record in events:
        publisher.publish(TOPIC, kind, record, key=record["customer_id"])
    publisher.flush()
    assert publisher.delivered == len(events)


def _cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = run_cli([*args, "--json"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json_line(result.stdout) if "projection" in result.stdout else json.loads(result.stdout)


def _drain(projection: str, env: dict[str, str]) -> dict[str, Any]:
    return _cli(["consume", projection, "--drain", "--timeout", "120"], env)


def test_crm_example_end_to_end(bootstrap: str, topic_env: dict[str, str], pg_url: str) -> None:
    """A user's package: both projections consume, rebuild, survive a replay, roll back,
    clean up."""
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": pg_url,
        "PROJECTIONIST_TABLE_PROJECTIONS": str(EXAMPLE / "customers.toml"),
    }
    created = run_cli(["topics"], env=env)
    assert created.returncode == 0, created.stderr[-2000:]
    conf = client_config(load_settings(bootstrap_servers=bootstrap).kafka)
    dlq = dead_letter_topic(TOPIC, "crm_customers", ".dlq")
    assert {TOPIC, dlq} <= set(AdminClient(conf).list_topics(timeout=10).topics)
    purge_topics(conf, [TOPIC, dlq])  # a broker kept across runs starts empty too

    rng = random.Random(1616)
    events = _history(rng, customers=150)
    _publish(env, events)
    publish_poison(bootstrap, TOPIC, 2)
    total = len(events) + 2

    customers = _drain("crm_customers", env)
    assert (customers["consumed"], customers["dead_lettered"]) == (total, 2)
    assert customers["applied"] + customers["stale"] == len(events)
    assert _customers(pg_url) == _customers_oracle(events)

    # crm_signups as a service: metrics and probes work for it as for the shipped ones
    port = free_port()
    service = start_cli(
        ["consume", "crm_signups", "--json"],
        env={**env, "PROJECTIONIST_METRICS_ADDRESS": f"127.0.0.1:{port}"},
    )
    try:
        wait_for(
            "crm_signups checkpointed every message",
            lambda: (
                service.poll() is not None or checkpoint_total(pg_url, "crm_signups_v1") == total
            ),
            timeout_s=90,
        )
        assert service.poll() is None, "the consumer exited early"
        wait_for(
            "/readyz to pass",
            lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200,
            timeout_s=60,
        )
        _, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    finally:
        service.send_signal(signal.SIGTERM)
        out, err = service.communicate(timeout=60)
    assert service.returncode == 0, err[-3000:]
    signups = json_line(out)
    assert (
        f'projectionist_events_applied_total{{projection="crm_signups_v1"}} {float(signups["applied"])}'
        in metrics
    )
    assert _signups(pg_url) == _signups_oracle(events)
    assert signups["applied"] == sum(_signups_oracle(events).values())

    dead = _cli(["dlq", "list", "crm_customers"], env)
    assert (dead["distinct"], dead["by_class"][0]["error_class"]) == (2, "UndecodableError")

    rebuilt = _cli(["rebuild", "crm_customers"], env)
    assert (rebuilt["swapped"], rebuilt["generation"], rebuilt["events"]) == (True, 2, total)
    assert _customers(pg_url) == _customers_oracle(events)
    status = _cli(["status", "crm_customers"], env)["projections"]
    assert [s["active_generation"] for s in status] == [2]

    # re-published older versions (new event ids, new offsets) change no row ...
    stale = [(k, {**r, "event_id": str(uuid.uuid4())}) for k, r in events if r["version"] < 3]
    _publish(env, stale)
    again = _drain("crm_customers", env)
    assert (again["applied"], again["stale"]) == (0, len(stale))
    assert _customers(pg_url) == _customers_oracle(events)
    # ... and neither does a replay of the whole topic
    replayed = _cli(["replay", "crm_customers", "--from", "beginning"], env)
    assert replayed["events_to_reapply"] == total + len(stale)
    after = _drain("crm_customers", env)
    assert after["applied"] == 0
    assert after["stale"] == len(events) + len(stale)
    assert _customers(pg_url) == _customers_oracle(events)

    back = run_cli(["rollback", "crm_customers"], env=env)
    assert back.returncode == 0, back.stderr[-2000:]
    assert _customers(pg_url) == _customers_oracle(events), "generation 1 as it was at the swap"
    cleaned = run_cli(["cleanup", "crm_customers"], env=env)
    assert cleaned.returncode == 0, cleaned.stderr[-2000:]
    assert "dropped generation(s) 2" in cleaned.stdout
