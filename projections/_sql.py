"""Small SQL helpers shared by the projections: dialect upserts and chunked IN lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["chunks", "insert_for"]

T = TypeVar("T")

# SQLite allows 32,766 bound parameters per statement; PostgreSQL 65,535. Keep IN
# lists and multi-row VALUES well below both.
MAX_PARAMS = 30_000


def insert_for(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which supports ON CONFLICT on both PostgreSQL and SQLite."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
