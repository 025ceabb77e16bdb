"""The orders projection's driver-level writes: same text as json.dumps, several applies
in one transaction, stored values as SQLAlchemy writes them (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from projections import Event, EventLedger, OrdersProjection, make_engine
from projections.orders import _lines_json
from schemas.events import ORDER_FULFILLED
from schemas.utc import from_millis as _utc

_ALPHABET = ["S", "-", "0", " ", '"', "\\", "é", "\x01", '",', "{", "}", "\u2028", "~", "\x7f"]


def _reference(lines: list[dict[str, object]]) -> str:
    """What the projection stored before the direct encoding (the rows on disk)."""
    return json.dumps(
        [
            {
                "sku": x["sku"],
                "quantity": int(x["quantity"]),
                "unit_price_minor": int(x["unit_price_minor"]),
            }  # type: ignore[call-overload]
            for x in lines
        ]
    )


def test_lines_json_is_json_dumps() -> None:
    rng = random.Random(21)
    for _ in range(20_000):
        lines = [
            {
                "sku": "".join(rng.choices(_ALPHABET, k=rng.randint(0, 8))),
                "quantity": rng.randint(-5, 2**31),
                "unit_price_minor": rng.choice([0, 1, -1, 2**63 - 1, rng.randint(0, 10**9)]),
            }
            for _ in range(rng.randint(0, 5))
        ]
        assert _lines_json(lines) == _reference(lines), lines  # type: ignore[arg-type]
    odd = [{"sku": "A", "quantity": True, "unit_price_minor": 3}]  # a bool is no int here
    assert (
        _lines_json(odd)
        == _reference(odd)
        == '[{"sku": "A", "quantity": 1, "unit_price_minor": 3}]'
    )  # type: ignore[arg-type]


def test_times_arrive_as_milliseconds_or_datetimes() -> None:
    at = datetime(2026, 3, 1, 23, 59, 59, 999_000, tzinfo=UTC)
    ms = int((at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))
    assert _utc(ms) == at
    assert _utc(at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))) == at
    assert _utc(ms).tzinfo is UTC
    far = 5_000_000_000_000  # beyond 2100: the exact timedelta path
    assert _utc(far) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=far)


def _order(n: int, *, customer: str = "c-1", total: int = 100, event: str | None = None) -> Event:
    record = {
        "event_id": event or f"00000000-0000-4000-8000-{n:012d}",
        "order_id": f"o-{n}",
        "customer_id": customer,
        "customer_email": f"{customer}@example.test",
        "lines": [{"sku": "S-1", "quantity": 1, "unit_price_minor": total}],
        "total_minor": total,
        "currency": "EUR",
        "fulfilled_at": 1_772_409_600_000 + n * 60_000,  # 2026-03-02, int ms (no logical types)
    }
    return Event("orders.orders", 0, n, ORDER_FULFILLED, str(record["event_id"]), record)  # type: ignore[arg-type]


@pytest.fixture
def orders(db_url: str) -> tuple[sa.Engine, OrdersProjection]:
    engine = make_engine(db_url)
    projection = OrdersProjection()
    metadata = sa.MetaData()
    projection.define_tables(metadata)
    metadata.create_all(engine)
    return engine, projection


def test_several_applies_in_one_transaction(orders: tuple[sa.Engine, OrdersProjection]) -> None:
    """Poison isolation applies halves of a batch in one transaction: each apply sees only
    its own events (the staging table is emptied by the merge), an order counts once."""
    engine, projection = orders
    try:
        with engine.begin() as conn:
            first = projection.apply(conn, [_order(1), _order(2)])
            second = projection.apply(conn, [_order(3), _order(2, event="e-again")])
            third = projection.apply(conn, [_order(1, event="e-third")])
            if conn.dialect.name == "postgresql":
                staged = conn.exec_driver_sql(
                    f'SELECT count(*) FROM "pj_staging_{projection.order_summaries.name}"'
                ).scalar_one()
                assert staged == 0
        assert (first.applied, first.stale) == (2, 0)
        assert (second.applied, second.stale) == (1, 1)
        assert (third.applied, third.stale) == (0, 1)
        with engine.connect() as conn:
            stats = conn.execute(sa.select(projection.customer_stats)).one()
            day = conn.execute(sa.select(projection.daily_sales)).one()
            ids = conn.execute(
                sa.select(
                    projection.order_summaries.c.order_id, projection.order_summaries.c.event_id
                )
            ).all()
        assert (stats.orders_count, stats.revenue_minor) == (3, 300)
        assert stats.first_order_at.replace(tzinfo=UTC) == _utc(1_772_409_600_000 + 60_000)
        assert stats.last_order_at.replace(tzinfo=UTC) == _utc(1_772_409_600_000 + 180_000)
        assert (day.day, day.currency, day.orders_count, day.revenue_minor) == (
            datetime(2026, 3, 2).date(),
            "EUR",
            3,
            300,
        )
        assert sorted(ids) == [
            ("o-1", "00000000-0000-4000-8000-000000000001"),
            ("o-2", "00000000-0000-4000-8000-000000000002"),
            ("o-3", "00000000-0000-4000-8000-000000000003"),
        ]
    finally:
        engine.dispose()


def test_stored_values_are_what_sqlalchemy_writes(
    orders: tuple[sa.Engine, OrdersProjection],
) -> None:
    """The driver-level rows equal rows written through SQLAlchemy's own INSERT, as stored."""
    engine, projection = orders
    try:
        with engine.begin() as conn:
            projection.apply(conn, [_order(1, total=250)])
        t = projection.order_summaries
        with engine.begin() as conn:
            stored = conn.exec_driver_sql(f"SELECT * FROM {t.name}").one()
            read = conn.execute(sa.select(t)).one()
            conn.execute(t.delete())
            conn.execute(t.insert().values(**read._asdict()))
            again = conn.exec_driver_sql(f"SELECT * FROM {t.name}").one()
            for table in (projection.customer_stats, projection.daily_sales):
                raw = conn.exec_driver_sql(f"SELECT * FROM {table.name}").one()
                row = conn.execute(sa.select(table)).one()
                conn.execute(table.delete())
                conn.execute(table.insert().values(**row._asdict()))
                assert conn.exec_driver_sql(f"SELECT * FROM {table.name}").one() == raw
        assert stored == again
        assert read.lines == '[{"sku": "S-1", "quantity": 1, "unit_price_minor": 250}]'
    finally:
        engine.dispose()


def test_ledger_first_copy_wins_in_log_order(db_url: str) -> None:
    """In-batch duplicates and ids recorded before are dropped; the rest keep their order."""
    engine = make_engine(db_url)
    ledger = EventLedger()
    try:
        with engine.begin() as conn:
            ledger.create(conn)
            first = [_order(n) for n in (5, 3, 9)]
            assert ledger.first_seen(conn, "orders_v1", first) == first
            assert ledger.first_seen(conn, "orders_v1", first) == []
            batch = [_order(7), _order(3), _order(1), _order(7)._replace(offset=70), _order(2)]
            kept = ledger.first_seen(conn, "orders_v1", batch)
            assert [(e.event_id[-1], e.offset) for e in kept] == [("7", 7), ("1", 1), ("2", 2)]
            assert ledger.first_seen(conn, "other_v1", batch[:2]) == batch[:2]  # per slot
    finally:
        engine.dispose()
