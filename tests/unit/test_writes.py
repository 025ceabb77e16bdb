"""The public write helpers (projections.writes), one contract on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    event,
)

from projections import make_engine
from projections.writes import add_counts, insert_absent, upsert_newest
from schemas.errors import ConfigurationError

META = MetaData()
PEOPLE = Table(
    "people",
    META,
    Column("person_id", String(50), primary_key=True),
    Column("name", Text),
    Column("score", Float),
    Column("born", Date),
    Column("seen_at", DateTime(timezone=True)),
    Column("balance", Numeric(12, 2)),
    Column("version", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
)
SEEN = Table(
    "seen",
    META,
    Column("person_id", String(50), primary_key=True),
    Column("first_name", Text),
)
COUNTS = Table(
    "counts",
    META,
    Column("country", String(2), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("first_at", DateTime(timezone=True)),
    Column("last_at", DateTime(timezone=True)),
)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        META.create_all(conn)
    yield engine
    engine.dispose()


def _rows(engine: sa.Engine, table: Table) -> list[dict[str, object]]:
    with engine.connect() as conn:
        key = list(table.primary_key.columns)
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*key))]


def _person(pid: str, version: int, *, deleted: bool = False, name: str | None = None) -> dict:
    return {
        "person_id": pid,
        "name": None if deleted else (name or f"{pid} v{version}"),
        "score": None if deleted else version / 3,
        "born": None if deleted else date(1990, 1, 1) + timedelta(days=version),
        "seen_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))
        + timedelta(minutes=version),
        "balance": None,
        "version": version,
        "deleted": deleted,
    }


def _statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_c: object, _cur: object, sql: str, *_rest: object) -> None:
        if sql.lstrip().upper().startswith("INSERT"):
            seen.append(sql)

    return seen


def test_upsert_newest_keeps_the_newest_row_whatever_the_order(engine: sa.Engine) -> None:
    """Any order and batching of versions gives each key its newest row; older versions are stale."""
    versions = [(f"p{i}", v) for i in range(60) for v in range(1, 6)]
    rng = random.Random(5)
    for attempt in range(3):
        rng.shuffle(versions)
        with engine.begin() as conn:
            if attempt:
                conn.execute(PEOPLE.delete())
            written = 0
            for start in range(0, len(versions), 37):
                part = versions[start : start + 37]
                written += upsert_newest(
                    conn, PEOPLE, [_person(p, v) for p, v in part], newest_by="version"
                )
            assert 60 <= written <= len(versions)
        rows = _rows(engine, PEOPLE)
        assert [(r["person_id"], r["version"], r["name"]) for r in rows] == sorted(
            (f"p{i}", 5, f"p{i} v5") for i in range(60)
        )
    with engine.begin() as conn:  # a replay of every older version changes nothing
        assert (
            upsert_newest(conn, PEOPLE, [_person(p, v) for p, v in versions], newest_by="version")
            == 0
        )
    assert _rows(engine, PEOPLE) == rows
    assert rows[0]["seen_at"].astimezone(UTC) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC) - timedelta(
        hours=2
    )


def test_upsert_newest_with_a_tie_breaker_lets_a_delete_win(engine: sa.Engine) -> None:
    """("version", "deleted"): a tombstone of the same version wins in either order; NULLs are written."""
    for first, second in ((False, True), (True, False)):
        with engine.begin() as conn:
            conn.execute(PEOPLE.delete())
            upsert_newest(
                conn, PEOPLE, [_person("a", 3, deleted=first)], newest_by=("version", "deleted")
            )
            upsert_newest(
                conn, PEOPLE, [_person("a", 3, deleted=second)], newest_by=("version", "deleted")
            )
        (row,) = _rows(engine, PEOPLE)
        assert (row["deleted"], row["name"], row["score"]) == (True, None, None)


def test_upsert_newest_is_one_statement_per_batch(engine: sa.Engine) -> None:
    """However many rows, the batch is one INSERT statement (set-based)."""
    seen = _statements(engine)
    with engine.begin() as conn:
        upsert_newest(
            conn, PEOPLE, [_person(f"p{i}", 1) for i in range(2_000)], newest_by="version"
        )
        insert_absent(conn, SEEN, [{"person_id": f"p{i}", "first_name": "x"} for i in range(2_000)])
    assert len(seen) == 2, seen


def test_insert_absent_returns_only_new_keys(engine: sa.Engine) -> None:
    """The first row of each new key is inserted and returned; stored keys are left alone."""
    with engine.begin() as conn:
        new = insert_absent(
            conn,
            SEEN,
            [
                {"person_id": "b", "first_name": "B"},
                {"person_id": "a", "first_name": "A"},
                {"person_id": "a", "first_name": "A2"},
            ],
        )
        assert [r["first_name"] for r in new] == ["A", "B"]
        again = insert_absent(
            conn,
            SEEN,
            [{"person_id": "a", "first_name": "no"}, {"person_id": "c", "first_name": "C"}],
        )
        assert [r["person_id"] for r in again] == ["c"]
        assert insert_absent(conn, SEEN, []) == []
    assert [(r["person_id"], r["first_name"]) for r in _rows(engine, SEEN)] == [
        ("a", "A"),
        ("b", "B"),
        ("c", "C"),
    ]


def test_add_counts_sums_deltas_and_keeps_extremes(engine: sa.Engine) -> None:
    """Counter deltas add up per key across batches; least/greatest ignore NULLs."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    rng = random.Random(9)
    deltas = [
        {
            "country": rng.choice("ABC") * 2,
            "day": date(2026, 3, rng.randint(1, 3)),
            "n": 1,
            "total": rng.randint(0, 10**12),
            "first_at": t0 + timedelta(seconds=rng.randint(0, 999)),
            "last_at": None if rng.random() < 0.2 else t0 + timedelta(seconds=rng.randint(0, 999)),
        }
        for _ in range(500)
    ]
    oracle: dict[tuple[str, date], list[object]] = {}
    for d in deltas:
        o = oracle.setdefault((d["country"], d["day"]), [0, 0, None, None])
        o[0] += 1
        o[1] += d["total"]
        o[2] = d["first_at"] if o[2] is None else min(o[2], d["first_at"])
        if d["last_at"] is not None:
            o[3] = d["last_at"] if o[3] is None else max(o[3], d["last_at"])
    with engine.begin() as conn:
        for start in range(0, len(deltas), 71):
            add_counts(
                conn,
                COUNTS,
                deltas[start : start + 71],
                add=("n", "total"),
                least=("first_at",),
                greatest=("last_at",),
            )
    got = {
        (r["country"], r["day"]): [r["n"], r["total"], r["first_at"], r["last_at"]]
        for r in _rows(engine, COUNTS)
    }

    def utc(v: object) -> object:
        return (
            v.astimezone(UTC)
            if isinstance(v, datetime) and v.tzinfo
            else v.replace(tzinfo=UTC)
            if isinstance(v, datetime)
            else v
        )

    assert {k: [utc(x) for x in v] for k, v in got.items()} == oracle


def test_helpers_refuse_unknown_columns_and_keyless_tables(engine: sa.Engine) -> None:
    """A misnamed column or a table without a primary key is a clear ConfigurationError."""
    keyless = Table("keyless", MetaData(), Column("x", Integer))
    with engine.begin() as conn:
        with pytest.raises(ConfigurationError, match="no column"):
            upsert_newest(conn, PEOPLE, [_person("a", 1)], newest_by="revision")
        with pytest.raises(ConfigurationError, match="no primary key"):
            insert_absent(conn, keyless, [{"x": 1}])
        with pytest.raises(ConfigurationError, match="lacks key column"):
            add_counts(conn, COUNTS, [{"country": "AA", "n": 1, "total": 1}], add=("n", "total"))
