"""Databases for tests: a fresh PostgreSQL database per test, checkpoint sums."""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.support.waiting import missing

PG_BASE_URL = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_reachable(url: str) -> bool:
    parsed = sa.engine.make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    if not pg_reachable(PG_BASE_URL):
        missing(
            f"PostgreSQL is not reachable at {sa.engine.make_url(PG_BASE_URL).render_as_string()}"
        )
    name = f"pj_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def query_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """Every row ``query`` answers, as tuples (a connection of its own)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def blog_posts(url: str, table: str) -> list[tuple[Any, ...]]:
    """A posts table (or view) in a comparable form, ordered by post id."""
    return query_rows(
        url,
        "SELECT post_id, title, description, tags, author, version, deleted_at IS NULL, "
        f"last_event_id FROM {table} ORDER BY post_id",
    )


def checkpoint_total(url: str, projection: str) -> int:
    """Sum of (last offset + 1) over a projection's checkpoint rows: events behind us."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("projection_checkpoints"):
                return 0
            row = conn.execute(
                sa.text(
                    "SELECT COALESCE(SUM(last_offset + 1), 0) FROM projection_checkpoints "
                    "WHERE projection = :p"
                ),
                {"p": projection},
            ).scalar_one()
            return int(row)
    finally:
        engine.dispose()


ROLES_SQL = Path(__file__).resolve().parents[2] / "deploy" / "sql" / "roles.sql"


@contextmanager
def database_roles(pg_url: str) -> Iterator[dict[str, str]]:
    """deploy/sql/roles.sql on ``pg_url`` with unique role names (roles are global to the
    server); a URL per role (owner, writer, reader, commands); the roles dropped after."""
    suffix = uuid.uuid4().hex[:8]
    names = {r: f"{r}_{suffix}" for r in ("owner", "writer", "reader", "commands")}
    sql = ROLES_SQL.read_text()
    sql = (
        sql.replace("projectionist_writer", names["writer"])
        .replace("projectionist_reader", names["reader"])
        .replace("projectionist_commands", names["commands"])
    )
    sql = re.sub(r"\bprojectionist\b", names["owner"], sql)
    admin = sa.create_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(sql)
        base = sa.engine.make_url(pg_url)
        yield {
            r: base.set(username=n).render_as_string(hide_password=False) for r, n in names.items()
        }
    finally:
        with admin.begin() as conn:
            # One role at a time: PostgreSQL 15 trips over shared default ACLs otherwise.
            for n in (names["writer"], names["reader"], names["commands"], names["owner"]):
                conn.exec_driver_sql(f"DROP OWNED BY {n} CASCADE")
            for n in names.values():
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {n}")
        admin.dispose()
