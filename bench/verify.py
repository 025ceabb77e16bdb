"""Every contender's table against the workload's oracle: a fast wrong answer is no result."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from bench.fullstate import Oracle
from bench.orders_workload import OrdersOracle, Summary
from projections import OrdersProjection
from projections.generations.versions import active_generation

__all__ = ["check_orders_peer", "check_orders_projectionist", "check_peer", "check_projectionist"]


def _compare(rows: list[tuple[str, int, str, str]], oracle: Oracle) -> list[str]:
    got = {post_id: (int(v), title, tuple(json.loads(tags))) for post_id, v, title, tags in rows}
    problems = []
    if got.keys() != oracle.posts.keys():
        problems.append(f"{len(got)} posts, expected {len(oracle.posts)}")
    wrong = [p for p, want in oracle.posts.items() if p in got and got[p] != want]
    if wrong:
        problems.append(f"{len(wrong)} posts differ from the oracle (e.g. {wrong[0]})")
    return problems


def check_peer(url: str, table: str, oracle: Oracle) -> list[str]:
    """Problems with a peer's ``table`` (post_id, version, title, tags as JSON); [] if none."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT post_id, version, title, tags FROM {table}")
            return _compare([tuple(r) for r in rows], oracle)  # type: ignore[misc]
    finally:
        engine.dispose()


def check_projectionist(url: str, oracle: Oracle) -> list[str]:
    """Problems with the active generation of ``blog``: posts and the tag cloud."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            gen = active_generation(conn, "blog", 1)
            rows = conn.exec_driver_sql(
                f"SELECT post_id, version, title, tags FROM posts_v{gen} WHERE deleted_at IS NULL"
            )
            problems = _compare([tuple(r) for r in rows], oracle)  # type: ignore[misc]
            cloud = dict(
                conn.exec_driver_sql(f"SELECT tag, posts_count FROM tag_cloud_v{gen}").all()
            )
            if cloud != oracle.tag_cloud():
                problems.append("tag cloud differs from the oracle")
            return problems
    finally:
        engine.dispose()


def _utc(value: Any) -> datetime:
    """A timestamp as PostgreSQL (aware) or SQLite (naive UTC, or its text) returns it."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _compare_orders(
    conn: Connection, tables: tuple[str, str, str], oracle: OrdersOracle
) -> list[str]:
    summaries, customers, days = tables
    problems: list[str] = []
    got_orders: dict[str, Summary] = {}
    for order_id, customer, email, count, lines, total, currency, at in conn.exec_driver_sql(
        "SELECT order_id, customer_id, customer_email, line_count, lines, total_minor, "
        f"currency, fulfilled_at FROM {summaries}"
    ):
        parsed = tuple(
            (x["sku"], int(x["quantity"]), int(x["unit_price_minor"])) for x in json.loads(lines)
        )
        if int(count) != len(parsed):
            problems.append(f"order {order_id}: line_count {count}, {len(parsed)} lines")
        got_orders[order_id] = (customer, email, parsed, int(total), currency, _utc(at))
    if got_orders.keys() != oracle.summaries.keys():
        problems.append(f"{len(got_orders)} order summaries, expected {len(oracle.summaries)}")
    wrong = [o for o, want in oracle.summaries.items() if o in got_orders and got_orders[o] != want]
    if wrong:
        problems.append(f"{len(wrong)} order summaries differ from the oracle (e.g. {wrong[0]})")
    stats = {
        (c, cur): (int(n), int(rev), _utc(first), _utc(last))
        for c, cur, n, rev, first, last in conn.exec_driver_sql(
            "SELECT customer_id, currency, orders_count, revenue_minor, first_order_at, "
            f"last_order_at FROM {customers}"
        )
    }
    want_stats = oracle.customer_stats()
    if stats != want_stats:
        off = sum(1 for k in want_stats.keys() | stats.keys() if stats.get(k) != want_stats.get(k))
        problems.append(f"customer_stats: {off} of {len(want_stats)} keys differ from the oracle")
    sales = {
        (_day(d), cur): (int(n), int(rev))
        for d, cur, n, rev in conn.exec_driver_sql(
            f"SELECT day, currency, orders_count, revenue_minor FROM {days}"
        )
    }
    want_sales = oracle.daily_sales()
    if sales != want_sales:
        off = sum(1 for k in want_sales.keys() | sales.keys() if sales.get(k) != want_sales.get(k))
        problems.append(f"daily_sales: {off} of {len(want_sales)} keys differ from the oracle")
    return problems


def check_orders_peer(url: str, prefix: str, oracle: OrdersOracle) -> list[str]:
    """Problems with a peer's ``<prefix>order_summaries``, ``…customer_stats``, ``…daily_sales``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = (f"{prefix}order_summaries", f"{prefix}customer_stats", f"{prefix}daily_sales")
            return _compare_orders(conn, names, oracle)
    finally:
        engine.dispose()


def check_orders_projectionist(url: str, oracle: OrdersOracle) -> list[str]:
    """Problems with the active generation of ``orders``: its three read models."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            gen = active_generation(conn, "orders", OrdersProjection.version)
            names = (f"order_summaries_v{gen}", f"customer_stats_v{gen}", f"daily_sales_v{gen}")
            return _compare_orders(conn, names, oracle)
    finally:
        engine.dispose()
