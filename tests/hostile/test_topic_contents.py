"""Hostile topic contents: schema-valid events that break a table, on SQLite and PostgreSQL.

Each hostile event is published among good ones; the shipped consumers (`consume blog`,
`consume orders`, `consume notifications --drain`) must dead-letter it with a reason that
names the rule, apply the rest of its batch (tables equal the oracle of the good events),
send one e-mail per good order to exactly one recipient, and print neither a traceback
nor any bound value of the batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from consumers.kafka.dead_letters import dead_letter_topic, read_dead_letters
from producers import SampleEvent, blog_events, order_events
from schemas import BLOG_POST_DELETED, BLOG_POST_UPDATED, ORDER_FULFILLED
from tests.support import json_line, run_cli
from tests.support.broker import publish
from tests.support.oracle import assert_blog_matches, assert_orders_match
from tests.support.servers import smtp_server

NUL = "\x00"
BLOG_GOOD = blog_events(posts=6, edits_per_post=1.0, delete_ratio=0.2, seed=171)
ORDERS_GOOD = order_events(orders=12, seed=172)


def _post(label: str, **changes: Any) -> tuple[str, SampleEvent]:
    base = next(e for e in BLOG_GOOD if e.event_type == BLOG_POST_UPDATED)
    record = {**base.record, "event_id": f"00000000-0000-4000-8000-{len(label):012d}"}
    record.update(changes)
    record.setdefault("post_id", base.record["post_id"])
    return label, SampleEvent("blog", BLOG_POST_UPDATED, f"hostile-{label}", record)


def _order(label: str, **changes: Any) -> tuple[str, SampleEvent]:
    base = ORDERS_GOOD[0]
    record = {**base.record, "order_id": f"hostile-{label}", **changes}
    return label, SampleEvent("orders", ORDER_FULFILLED, f"hostile-{label}", record)


def _uuids(items: list[tuple[str, SampleEvent]]) -> list[tuple[str, SampleEvent]]:
    """Give every hostile event its own event id (the ledger must not dedup them)."""
    out = []
    for n, (label, ev) in enumerate(items):
        record = {**ev.record, "event_id": f"11111111-0000-4000-8000-{n:012d}"}
        out.append((label, replace(ev, record=record)))
    return out


LONG = "p" * 201
#: (label, event) that must be dead-lettered; the label's words appear in the reason
BLOG_DEAD = _uuids(
    [
        _post("post_id", post_id=LONG),
        _post("author", post_id="h-author", author="a" * 201),
        _post("title NUL", post_id="h-title", title=f"a{NUL}b"),
        _post("description NUL", post_id="h-desc", description=f"a{NUL}b"),
        _post("tags NUL", post_id="h-tag", tags=[f"x{NUL}"]),
        _post("post_id NUL", post_id=f"h{NUL}nul"),
        _post("post_id control", post_id="h\r\nX-Injected: 1"),
        _post("tag 1-64", post_id="h-longtag", tags=["t" * 65]),
        _post("tag 1-64", post_id="h-emptytag", tags=[""]),
        _post("post_id empty", post_id=""),
        _post("version", post_id="h-version", version=0),
        _post("slug NUL", post_id="h-slug", slug=f"s{NUL}"),
        (
            "post_id",
            SampleEvent(
                "blog",
                BLOG_POST_DELETED,
                "hostile-delete",
                {
                    "event_id": "22222222-0000-4000-8000-000000000001",
                    "post_id": "d" * 500,
                    "deleted_at": BLOG_GOOD[0].record["updated_at"],
                    "version": 9,
                },
            ),
        ),
        (
            # decoded without logical types (the blog's), validation refuses the time
            "updated_at outside the years 1-9999",
            SampleEvent(
                "blog",
                BLOG_POST_UPDATED,
                "hostile-time",
                {
                    **_post("x", post_id="h-time")[1].record,
                    "event_id": "22222222-0000-4000-8000-000000000002",
                    "updated_at": 2**62,
                },
            ),
        ),
    ]
)
#: hostile-looking but valid: applied like any other event
BLOG_APPLIED = _uuids(
    [
        _post("unicode", post_id="probe-é😀", tags=["İ" * 64]),
        _post("sql", post_id="x'); DROP TABLE blog_posts_v1; --", title="' OR 1=1 --"),
        _post("big title", post_id="h-big", title="T" * 200_000),
        _post("width 200", post_id="w" * 200, author="a" * 200),
    ]
)
ORDERS_DEAD = _uuids(
    [
        _order("order_id", order_id="o" * 201),
        _order("customer_id", customer_id="c" * 201),
        _order("customer_email", customer_email="e" * 310 + "@example.test"),
        _order("customer_email plain", customer_email="a@x.test, b@x.test"),
        _order("customer_email display", customer_email="Boss <boss@x.test>"),
        _order("customer_email header", customer_email="a@x.test\r\nBcc: all@x.test"),
        _order("customer_id NUL", customer_id=f"c{NUL}"),
        _order("order_id control", order_id="o\nX"),
        _order(
            "minor units",
            lines=[{"sku": "S", "quantity": 1, "unit_price_minor": 2**63 - 1}],
            total_minor=2**63 - 1,
        ),
        _order(
            "minor units",
            lines=[{"sku": "S", "quantity": 2**31 - 1, "unit_price_minor": 10**8}],
            total_minor=(2**31 - 1) * 10**8,
        ),
        _order("total_minor", total_minor=-1),
        _order("currency", currency="ÄÖÜ"),
        _order(
            "sku NUL",
            lines=[{"sku": f"S{NUL}", "quantity": 1, "unit_price_minor": 5}],
            total_minor=5,
        ),
        _order(
            "sku", lines=[{"sku": "S" * 201, "quantity": 1, "unit_price_minor": 5}], total_minor=5
        ),
        _order("fulfilled_at outside the years 1-9999", fulfilled_at=-(2**62)),
    ]
)
ORDERS_APPLIED = _uuids(
    [
        _order("unicode", order_id="probe-é😀", customer_id="kunde-ü"),
        _order("sql", order_id="'; DELETE FROM order_summaries_v1; --"),
        _order(
            "max money",
            lines=[{"sku": "S", "quantity": 1, "unit_price_minor": 10**16}],
            total_minor=10**16,
        ),
    ]
)


def _interleave(
    good: list[SampleEvent], hostile: list[tuple[str, SampleEvent]]
) -> list[SampleEvent]:
    out = list(good)
    for n, (_label, ev) in enumerate(hostile):
        out.insert((n * 7) % (len(out) + 1), ev)
    return out


def _clean_output(text: str, secrets: list[str]) -> None:
    assert "Traceback" not in text, text[-3000:]
    assert "[parameters" not in text, text[-3000:]
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"bound values in the output: {leaked[:3]}"


def _check_dead_letters(
    env: dict[str, str], topic: str, projection: str, dead: list[tuple[str, SampleEvent]]
) -> None:
    from consumers.kafka.config import client_config
    from consumers.settings.models import Settings

    letters = read_dead_letters(
        client_config(Settings(bootstrap_servers=env["PROJECTIONIST_BOOTSTRAP_SERVERS"]).kafka),
        dead_letter_topic(topic, projection, ".dlq"),  # the projection's own DLQ topic
    )
    by_key = {(lt.key or b"").decode(): lt for lt in letters}
    assert Counter((lt.key or b"").decode() for lt in letters) == Counter(ev.key for _, ev in dead)
    for label, ev in dead:
        letter = by_key[ev.key]
        message = letter.dlq["error.message"]
        assert letter.dlq["error.class"] in ("InvalidEventError", "UndecodableError"), letter.dlq
        assert label.split()[0] in message or label in message, (label, message)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_hostile_events_are_dead_lettered_and_the_rest_applies(
    database: str, bootstrap: str, topic_env: dict[str, str], sqlite_url: str, pg_url: str
) -> None:
    """Every event a table cannot take is dead-lettered with its reason; the rest equals the oracle; one mail, one recipient per good order; no traceback, no bound values printed."""
    url = sqlite_url if database == "sqlite" else pg_url
    env = {**topic_env, "PROJECTIONIST_DATABASE_URL": url}
    blog_topic, orders_topic = env["PROJECTIONIST_BLOG_TOPIC"], env["PROJECTIONIST_ORDERS_TOPIC"]
    blog_stream = _interleave(BLOG_GOOD + [ev for _, ev in BLOG_APPLIED], BLOG_DEAD)
    orders_stream = _interleave(ORDERS_GOOD + [ev for _, ev in ORDERS_APPLIED], ORDERS_DEAD)
    publish(bootstrap, blog_topic, blog_stream, partitions=2)
    publish(bootstrap, orders_topic, orders_stream, partitions=2)
    secrets = sorted({e.record["customer_email"] for e in ORDERS_GOOD} | {LONG})

    for projection, dead in (("blog", BLOG_DEAD), ("orders", ORDERS_DEAD)):
        result = run_cli(["consume", projection, "--drain", "--json", "--timeout", "90"], env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        _clean_output(result.stdout + result.stderr, secrets)
        stats = json_line(result.stdout)
        assert stats["dead_lettered"] == len(dead), stats
    assert_blog_matches(url, [e for e in blog_stream if e not in [ev for _, ev in BLOG_DEAD]])
    assert_orders_match(url, [e for e in orders_stream if e not in [ev for _, ev in ORDERS_DEAD]])
    _check_dead_letters(env, blog_topic, "blog", BLOG_DEAD)
    _check_dead_letters(env, orders_topic, "orders", ORDERS_DEAD)

    with smtp_server() as smtp:
        mail_env = {
            **env,
            "PROJECTIONIST_SMTP_HOST": "127.0.0.1",
            "PROJECTIONIST_SMTP_PORT": str(smtp.port),
        }
        result = run_cli(["consume", "notifications", "--drain", "--json"], env=mail_env)
        assert result.returncode == 0, result.stderr[-3000:]
        _clean_output(result.stdout + result.stderr, secrets)
        good_orders = ORDERS_GOOD + [ev for _, ev in ORDERS_APPLIED]
        summary = json_line(result.stdout)
        assert summary["extra"]["mail_sent"] == len(good_orders)
        assert summary["dead_lettered"] == len(ORDERS_DEAD), summary
        recipients = [r.recipients for r in smtp.received]
    assert sorted(recipients) == sorted([e.record["customer_email"]] for e in good_orders)
