"""Small SQL helpers shared by the projections: dialect upserts, chunked IN lists, COPY,
bind processing of driver-level rows, JSON text written without ``json``, timestamps
that travel to PostgreSQL as int microseconds."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

__all__ = [
    "PLAIN_JSON_TEXT",
    "bind_processed",
    "chunks",
    "copy_rows",
    "insert_for",
    "timestamptz_of_micros",
]

T = TypeVar("T")

# SQLite allows 32,766 bound parameters per statement; PostgreSQL 65,535. Keep IN
# lists and multi-row VALUES well below both.
MAX_PARAMS = 30_000


#: a JSON string body ``json.dumps`` writes as is: printable ASCII without ``"`` or ``\``
PLAIN_JSON_TEXT = re.compile(r"[ !#-\[\]-~]*")


def insert_for(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which supports ON CONFLICT on both PostgreSQL and SQLite."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def copy_rows(
    conn: Connection, statement: str, types: Sequence[str], rows: list[list[Any]]
) -> None:
    """Binary ``COPY … FROM STDIN`` of ``rows``; the driver's errors surface as the
    DBAPIError SQLAlchemy raises for an execute(), so the runtime's outage / rejected
    value classification (poison isolation) sees COPY failures too."""
    dialect = conn.dialect
    dbapi_conn = conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            copy.set_types(list(types))
            for v in rows:
                copy.write_row(v)
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, dbapi_conn, cursor)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    finally:
        cursor.close()


def bind_processed(
    conn: Connection, table: Table, rows: list[list[Any]], order: Sequence[str]
) -> list[list[Any]]:
    """``rows`` (values in ``order``, the table's column order) through each column's bind
    processor on this dialect, in place: the stored format is the one SQLAlchemy writes
    and reads everywhere else (SQLite keeps DateTime as its own text)."""
    names = [c.name for c in table.columns]
    if tuple(names) != tuple(order):
        raise RuntimeError(f"{table.name} columns {names} are not {tuple(order)}")
    dialect = conn.dialect
    for i, c in enumerate(table.columns):
        proc = c.type.dialect_impl(dialect).bind_processor(dialect)
        if proc is None:
            continue
        for v in rows:
            if v[i] is not None:
                v[i] = proc(v[i])
    return rows


def timestamptz_of_micros(column: str) -> str:
    """PostgreSQL SQL turning ``column`` (int microseconds since the epoch, as
    ``schemas.utc.to_micros`` gives) into a timestamptz exactly: the seconds and the
    remaining microseconds are multiplied separately, each product exact in float8 (one
    ``* interval '1 microsecond'`` is not, far from 1970). Staging tables take
    timestamps this way so that no datetime is built per value in Python."""
    return (
        f"timestamptz 'epoch' + ({column} / 1000000) * interval '1 second' "
        f"+ mod({column}, 1000000) * interval '1 microsecond'"
    )
