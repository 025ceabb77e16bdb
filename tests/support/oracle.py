"""The expected read models, computed from the list of published events alone.

Written independently of ``projections`` from the fold rules in its docs: the newest
version of a post wins, a delete is terminal, duplicates and stale versions change
nothing, and the tag cloud counts live posts per tag. A tombstone is the post's first
delete in log order: its version is that delete's, whatever came after it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from producers import SampleEvent


@dataclass
class BlogModel:
    live: dict[str, dict[str, Any]]  # post_id -> expected columns
    deleted: set[str]
    tag_cloud: dict[str, int]
    #: post_id -> the tombstone's version (the first delete's)
    tombstones: dict[str, int] = field(default_factory=dict)


def blog_oracle(events: Iterable[SampleEvent]) -> BlogModel:
    newest: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    tombstones: dict[str, int] = {}
    for ev in events:
        r = ev.record
        if ev.event_type == "blog.BlogPostDeleted":
            deleted.add(r["post_id"])
            tombstones.setdefault(r["post_id"], r["version"])
        elif ev.event_type == "blog.BlogPostUpdated":
            current = newest.get(r["post_id"])
            if current is None or r["version"] > current["version"]:
                newest[r["post_id"]] = r
    live = {
        pid: {
            "title": r["title"],
            "description": r["description"],
            "tags": sorted(set(r["tags"])),
            "author": r["author"],
            "version": r["version"],
        }
        for pid, r in newest.items()
        if pid not in deleted
    }
    cloud: Counter[str] = Counter()
    for row in live.values():
        cloud.update(row["tags"])
    return BlogModel(live, deleted, dict(cloud), tombstones)


def blog_actual(url: str, generation: int = 1) -> BlogModel:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            live, deleted, tombstones = {}, set(), {}
            for row in conn.execute(
                sa.text(
                    f"SELECT post_id, title, description, tags, author, version, deleted_at FROM posts_v{generation}"
                )
            ).mappings():
                if row["deleted_at"] is not None:
                    deleted.add(row["post_id"])
                    tombstones[row["post_id"]] = row["version"]
                else:
                    live[row["post_id"]] = {
                        "title": row["title"],
                        "description": row["description"],
                        "tags": sorted(json.loads(row["tags"])),
                        "author": row["author"],
                        "version": row["version"],
                    }
            cloud = {
                r.tag: r.posts_count
                for r in conn.execute(
                    sa.text(f"SELECT tag, posts_count FROM tag_cloud_v{generation}")
                )
            }
        return BlogModel(live, deleted, cloud, tombstones)
    finally:
        engine.dispose()


def assert_blog_matches(url: str, events: Iterable[SampleEvent], generation: int = 1) -> BlogModel:
    expected = blog_oracle(events)
    actual = blog_actual(url, generation)
    wrong = [
        pid
        for pid in expected.live.keys() | actual.live.keys()
        if expected.live.get(pid) != actual.live.get(pid)
    ]
    assert not wrong, (
        f"{len(wrong)} posts differ, e.g. {wrong[0]}: expected {expected.live.get(wrong[0])}, got {actual.live.get(wrong[0])}"
    )
    assert actual.deleted == expected.deleted, (
        f"tombstones differ: missing {sorted(expected.deleted - actual.deleted)[:5]}, "
        f"extra {sorted(actual.deleted - expected.deleted)[:5]}"
    )
    versions = [p for p in expected.tombstones if expected.tombstones[p] != actual.tombstones[p]]
    assert not versions, (
        f"{len(versions)} tombstone versions differ, e.g. {versions[0]}: expected "
        f"{expected.tombstones[versions[0]]}, got {actual.tombstones[versions[0]]}"
    )
    diff = {
        t: (expected.tag_cloud.get(t), actual.tag_cloud.get(t))
        for t in expected.tag_cloud.keys() | actual.tag_cloud.keys()
        if expected.tag_cloud.get(t) != actual.tag_cloud.get(t)
    }
    assert not diff, f"tag cloud differs (expected, actual): {dict(list(diff.items())[:10])}"
    return expected


@dataclass
class OrdersModel:
    summaries: dict[str, dict[str, Any]]  # order_id -> expected columns
    customers: dict[tuple[str, str], dict[str, Any]]  # (customer, currency) -> stats
    daily: dict[tuple[str, str], dict[str, int]]  # (ISO day, currency) -> orders, revenue


def _utc_naive(value: Any) -> Any:
    """Datetimes compared as naive UTC (SQLite returns naive, PostgreSQL aware)."""
    from datetime import UTC, datetime

    if isinstance(value, str):  # SQLite hands back DATETIME text through sa.text()
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def orders_oracle(events: Iterable[SampleEvent]) -> OrdersModel:
    """An order counts once (its first event in publish order); money in minor units."""
    summaries: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.event_type != "orders.OrderFulfilled":
            continue
        r = ev.record
        if r["order_id"] in summaries:
            continue
        summaries[r["order_id"]] = {
            "customer_id": r["customer_id"],
            "line_count": len(r["lines"]),
            "lines": [dict(line) for line in r["lines"]],
            "total_minor": r["total_minor"],
            "currency": r["currency"],
            "fulfilled_at": _utc_naive(r["fulfilled_at"]),
        }
    customers: dict[tuple[str, str], dict[str, Any]] = {}
    daily: dict[tuple[str, str], dict[str, int]] = {}
    for s in summaries.values():
        c = customers.setdefault(
            (s["customer_id"], s["currency"]),
            {
                "orders_count": 0,
                "revenue_minor": 0,
                "first": s["fulfilled_at"],
                "last": s["fulfilled_at"],
            },
        )
        c["orders_count"] += 1
        c["revenue_minor"] += s["total_minor"]
        c["first"] = min(c["first"], s["fulfilled_at"])
        c["last"] = max(c["last"], s["fulfilled_at"])
        d = daily.setdefault(
            (s["fulfilled_at"].date().isoformat(), s["currency"]),
            {"orders_count": 0, "revenue_minor": 0},
        )
        d["orders_count"] += 1
        d["revenue_minor"] += s["total_minor"]
    return OrdersModel(summaries, customers, daily)


def orders_actual(url: str, generation: int = 1) -> OrdersModel:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            summaries = {
                row["order_id"]: {
                    "customer_id": row["customer_id"],
                    "line_count": row["line_count"],
                    "lines": json.loads(row["lines"]),
                    "total_minor": row["total_minor"],
                    "currency": row["currency"],
                    "fulfilled_at": _utc_naive(row["fulfilled_at"]),
                }
                for row in conn.execute(
                    sa.text(
                        "SELECT order_id, customer_id, line_count, lines, total_minor, currency, "
                        f"fulfilled_at FROM order_summaries_v{generation}"
                    )
                ).mappings()
            }
            customers = {
                (row["customer_id"], row["currency"]): {
                    "orders_count": row["orders_count"],
                    "revenue_minor": row["revenue_minor"],
                    "first": _utc_naive(row["first_order_at"]),
                    "last": _utc_naive(row["last_order_at"]),
                }
                for row in conn.execute(
                    sa.text(
                        "SELECT customer_id, currency, orders_count, revenue_minor, "
                        f"first_order_at, last_order_at FROM customer_stats_v{generation}"
                    )
                ).mappings()
            }
            daily = {
                (str(row["day"])[:10], row["currency"]): {
                    "orders_count": row["orders_count"],
                    "revenue_minor": row["revenue_minor"],
                }
                for row in conn.execute(
                    sa.text(
                        f"SELECT day, currency, orders_count, revenue_minor FROM daily_sales_v{generation}"
                    )
                ).mappings()
            }
        return OrdersModel(summaries, customers, daily)
    finally:
        engine.dispose()


def assert_orders_match(
    url: str, events: Iterable[SampleEvent], generation: int = 1
) -> OrdersModel:
    expected = orders_oracle(events)
    actual = orders_actual(url, generation)
    for name in ("summaries", "customers", "daily"):
        want, got = getattr(expected, name), getattr(actual, name)
        wrong = [k for k in want.keys() | got.keys() if want.get(k) != got.get(k)]
        assert not wrong, (
            f"{name}: {len(wrong)} rows differ, e.g. {wrong[0]}: expected {want.get(wrong[0])}, got {got.get(wrong[0])}"
        )
    return expected
