"""The orders workload has its stated shape, and its oracle check can fail."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.orders_workload import CURRENCIES, OrdersOracle, orders_events
from bench.verify import check_orders_peer
from schemas import AvroSerde, SchemaCatalog
from schemas.events import ORDER_FULFILLED


def test_orders_have_the_stated_shape_and_noise() -> None:
    """Every order once in order, 1-5 lines summing to the total, four currencies, 30 days;
    ~2 % re-published duplicates (same event id) and ~0.5 % second fulfilments (new event
    id), each after its original; the oracle holds each order's first fulfilment."""
    oracle = OrdersOracle()
    events = list(orders_events(orders=20_000, customers=1_000, oracle=oracle))
    ids = Counter(r["event_id"] for _, r in events)
    per_order = Counter(order_id for order_id, _ in events)
    assert len(per_order) == len(oracle.summaries) == 20_000
    assert sum(1 for n in ids.values() if n == 2) == oracle.duplicates
    assert 300 <= oracle.duplicates <= 500
    assert 60 <= oracle.second_fulfilments <= 140
    assert len(events) == 20_000 + oracle.duplicates + oracle.second_fulfilments
    first: dict[str, dict[str, Any]] = {}
    for order_id, r in events:
        first.setdefault(order_id, r)
        assert 1 <= len(r["lines"]) <= 5
        assert r["total_minor"] == sum(x["quantity"] * x["unit_price_minor"] for x in r["lines"])
        assert r["currency"] in CURRENCIES
        assert r["fulfilled_at"].microsecond % 1000 == 0  # timestamp-millis round-trips
    for order_id, r in first.items():
        assert oracle.summaries[order_id][3] == r["total_minor"]
        assert oracle.summaries[order_id][5] == r["fulfilled_at"]
    days = {at.date() for *_, at in oracle.summaries.values()}
    assert 30 <= len(days) <= 32
    assert {c for _, c in oracle.customer_stats()} == set(CURRENCIES)
    serde = AvroSerde(SchemaCatalog.load())
    assert serde.decode(serde.encode(ORDER_FULFILLED, events[0][1], version=1)).record


def _write(url: str, events: list[tuple[str, dict[str, Any]]], *, count_all: bool) -> None:
    """A fold of ``events`` into ho_* tables: each order's first event (or, wrong, all)."""
    summaries: dict[str, dict[str, Any]] = {}
    counted: list[dict[str, Any]] = []
    for order_id, r in events:
        if order_id not in summaries:
            summaries[order_id] = r
            counted.append(r)
        elif count_all:
            counted.append(r)
    stats: dict[tuple[str, str], list[Any]] = {}
    sales: dict[tuple[str, str], list[int]] = {}
    for r in counted:
        at = r["fulfilled_at"]
        s = stats.setdefault((r["customer_id"], r["currency"]), [0, 0, at, at])
        s[0], s[1], s[2], s[3] = s[0] + 1, s[1] + r["total_minor"], min(s[2], at), max(s[3], at)
        d = sales.setdefault((at.date().isoformat(), r["currency"]), [0, 0])
        d[0], d[1] = d[0] + 1, d[1] + r["total_minor"]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE ho_order_summaries (order_id, customer_id, customer_email, "
            "line_count, lines, total_minor, currency, fulfilled_at)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE ho_customer_stats (customer_id, currency, orders_count, "
            "revenue_minor, first_order_at, last_order_at)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE ho_daily_sales (day, currency, orders_count, revenue_minor)"
        )
        conn.exec_driver_sql(
            "INSERT INTO ho_order_summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (o, r["customer_id"], r["customer_email"], len(r["lines"]),
                 json.dumps(r["lines"]), r["total_minor"], r["currency"],
                 r["fulfilled_at"].isoformat())
                for o, r in summaries.items()
            ],
        )  # fmt: skip
        conn.exec_driver_sql(
            "INSERT INTO ho_customer_stats VALUES (?, ?, ?, ?, ?, ?)",
            [(c, cur, n, rev, f.isoformat(), la.isoformat())
             for (c, cur), (n, rev, f, la) in stats.items()],
        )  # fmt: skip
        conn.exec_driver_sql(
            "INSERT INTO ho_daily_sales VALUES (?, ?, ?, ?)",
            [(d, cur, n, rev) for (d, cur), (n, rev) in sales.items()],
        )
    engine.dispose()


def test_the_oracle_check_passes_a_right_fold_and_fails_one_that_counts_duplicates(
    tmp_path: Path,
) -> None:
    oracle = OrdersOracle()
    events = list(orders_events(orders=3_000, customers=200, oracle=oracle))
    right, wrong = f"sqlite:///{tmp_path / 'right.db'}", f"sqlite:///{tmp_path / 'wrong.db'}"
    _write(right, events, count_all=False)
    _write(wrong, events, count_all=True)
    assert check_orders_peer(right, "ho_", oracle) == []
    problems = check_orders_peer(wrong, "ho_", oracle)
    assert any(p.startswith("customer_stats:") for p in problems)
    assert any(p.startswith("daily_sales:") for p in problems)
