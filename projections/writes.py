"""Set-based writes for projections: one statement per batch and table, on every dialect.

The three shapes a read model needs, without dialect SQL in the projection:

* :func:`upsert_newest` — a version-guarded upsert: a row is inserted, or replaces the
  stored row only when its ``newest_by`` columns compare greater (a replayed or
  re-published older event never overwrites a newer row);
* :func:`insert_absent` — insert-if-absent, returning the rows that were new (count
  something once per key: an order, a customer);
* :func:`add_counts` — counter deltas: add to the stored counts (and keep the least /
  greatest of some columns), inserting the row when the key is new.

A row is a ``dict`` of column name → value; the table's primary key says which
columns identify a row. Each helper first folds the batch's rows per key in Python
(the newest row, the first row, the summed deltas), so one statement carries the whole
batch: PostgreSQL gets ``INSERT … SELECT FROM unnest(<one array per column>)`` (binary
arrays), SQLite one ``executemany`` (its driver loops in C). Keys are written in sorted
order, so concurrent writers lock rows in one order and never deadlock. Values go
through each column's own bind processing, so what is stored reads back through
SQLAlchemy like any other row.

Supported dialects: PostgreSQL and SQLite (the two :func:`projections.make_engine`
connects to); any other dialect is a :class:`ConfigurationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Table

from projections._sql import MAX_PARAMS, chunks
from schemas.errors import ConfigurationError

__all__ = ["Row", "add_counts", "insert_absent", "upsert_newest"]

#: one row to write: column name → value
Row = Mapping[str, Any]


def upsert_newest(
    conn: Connection, table: Table, rows: Iterable[Row], *, newest_by: str | Sequence[str]
) -> int:
    """Write each key's newest row unless the stored row is as new or newer.

    ``newest_by`` names the column (or columns, compared in order: ``("version",
    "deleted")``) that orders a key's rows. Returns the number of rows written
    (inserted or replaced); the others were stale.
    """
    order = [newest_by] if isinstance(newest_by, str) else list(newest_by)
    writer = _Writer(conn, table)
    writer.require(order)
    newest: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        k = writer.key_of(row)
        held = newest.get(k)
        if held is None or _ordered(row, order) > _ordered(held, order):
            newest[k] = row
    if not newest:
        return 0
    q = writer.quote
    updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in writer.names if c not in writer.key)
    stored = ", ".join(f"{writer.table_sql}.{q(c)}" for c in order)
    incoming = ", ".join(f"excluded.{q(c)}" for c in order)
    guard = f"({stored}) < ({incoming})" if len(order) > 1 else f"{stored} < {incoming}"
    conflict = f"ON CONFLICT ({writer.key_sql}) DO UPDATE SET {updates} WHERE {guard}"
    return writer.write(newest, conflict)


def insert_absent(conn: Connection, table: Table, rows: Iterable[Row]) -> list[Row]:
    """Insert the rows whose key is not stored yet; return those rows (first per key)."""
    writer = _Writer(conn, table)
    first: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        first.setdefault(writer.key_of(row), row)
    if not first:
        return []
    new_keys = writer.insert_returning_keys(first)
    return [first[k] for k in sorted(new_keys)]


def add_counts(
    conn: Connection,
    table: Table,
    rows: Iterable[Row],
    *,
    add: Sequence[str],
    least: Sequence[str] = (),
    greatest: Sequence[str] = (),
) -> None:
    """Add each row's ``add`` columns to the stored row of its key (or insert it).

    ``least`` / ``greatest`` columns keep the smallest / largest value seen (first and
    last order time); NULLs are ignored. Other columns are written when the row is new.
    """
    writer = _Writer(conn, table)
    writer.require([*add, *least, *greatest])
    folded: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = writer.key_of(row)
        held = folded.get(k)
        if held is None:
            folded[k] = dict(row)
            continue
        for c in add:
            held[c] = (held[c] or 0) + (row[c] or 0)
        for c in least:
            held[c] = _pick(min, held.get(c), row.get(c))
        for c in greatest:
            held[c] = _pick(max, held.get(c), row.get(c))
    if not folded:
        return
    q, t = writer.quote, writer.table_sql
    sets = [f"{q(c)} = {t}.{q(c)} + excluded.{q(c)}" for c in add]
    for cols, fn in ((least, writer.least), (greatest, writer.greatest)):
        sets += [
            f"{q(c)} = {fn}(COALESCE({t}.{q(c)}, excluded.{q(c)}), "
            f"COALESCE(excluded.{q(c)}, {t}.{q(c)}))"
            for c in cols
        ]
    writer.write(folded, f"ON CONFLICT ({writer.key_sql}) DO UPDATE SET {', '.join(sets)}")


def _ordered(row: Row, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[c] for c in columns)


def _pick(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else fn(a, b)


class _Writer:
    """One table on one connection: quoting, bind processing and the two statement shapes."""

    def __init__(self, conn: Connection, table: Table) -> None:
        dialect = conn.dialect
        if dialect.name not in ("postgresql", "sqlite"):
            raise ConfigurationError(
                f"projections.writes supports PostgreSQL and SQLite, not {dialect.name}"
            )
        self.conn = conn
        self.postgres = dialect.name == "postgresql"
        self.columns: list[Column[Any]] = list(table.columns)
        self.names = [c.name for c in self.columns]
        self.key = [c.name for c in table.primary_key.columns]
        if not self.key:
            raise ConfigurationError(f"table {table.name} has no primary key to write by")
        preparer = dialect.identifier_preparer
        self.quote = preparer.quote
        self.table_sql = preparer.format_table(table)
        self.key_sql = ", ".join(self.quote(c) for c in self.key)
        self.least, self.greatest = ("LEAST", "GREATEST") if self.postgres else ("MIN", "MAX")
        self._procs = [
            (i, proc, isinstance(c.type, DateTime))
            for i, c in enumerate(self.columns)
            if (proc := c.type.dialect_impl(dialect).bind_processor(dialect))
            or isinstance(c.type, DateTime)
        ]
        self._array_types = [c.type.compile(dialect=dialect) for c in self.columns]

    def require(self, columns: Iterable[str]) -> None:
        unknown = sorted(set(columns) - set(self.names))
        if unknown:
            raise ConfigurationError(f"{self.table_sql} has no column(s) {', '.join(unknown)}")

    def key_of(self, row: Row) -> tuple[Any, ...]:
        try:
            return tuple(row[c] for c in self.key)
        except KeyError as exc:
            raise ConfigurationError(
                f"a row for {self.table_sql} lacks key column {exc.args[0]}"
            ) from None

    def _values(self, rows: Mapping[tuple[Any, ...], Row]) -> list[list[Any]]:
        """Rows in key order, as value lists in column order, bind-processed."""
        values = [[row.get(n) for n in self.names] for _, row in sorted(rows.items())]
        for i, proc, is_time in self._procs:
            for v in values:
                value = v[i]
                if value is None:
                    continue
                if is_time and isinstance(value, datetime) and value.tzinfo is not None:
                    value = value.astimezone(UTC)  # SQLite keeps no offset: store UTC
                v[i] = proc(value) if proc is not None else value
        return values

    def _insert_head(self) -> str:
        return f"INSERT INTO {self.table_sql} ({', '.join(self.quote(n) for n in self.names)})"

    def _unnest(self) -> str:
        arrays = ", ".join(f"%b::{t}[]" for t in self._array_types)
        return f"SELECT * FROM unnest({arrays})"

    def write(self, rows: Mapping[tuple[Any, ...], Row], conflict: str) -> int:
        """One statement for every row; the number of rows inserted or updated."""
        values = self._values(rows)
        if self.postgres:
            params = tuple(list(col) for col in zip(*values, strict=True))
            sql = f"{self._insert_head()} {self._unnest()} {conflict}"
            return int(self.conn.exec_driver_sql(sql, params).rowcount)
        marks = ", ".join("?" * len(self.names))
        sql = f"{self._insert_head()} VALUES ({marks}) {conflict}"
        return int(self.conn.exec_driver_sql(sql, [tuple(v) for v in values]).rowcount)

    def insert_returning_keys(self, rows: Mapping[tuple[Any, ...], Row]) -> set[tuple[Any, ...]]:
        values = self._values(rows)
        returning = f"ON CONFLICT DO NOTHING RETURNING {self.key_sql}"
        # Keys come back as the driver returns them; map them to the rows' own key values
        # by position in key order (bind processing may have changed their Python type).
        positions = [self.names.index(k) for k in self.key]
        by_stored = {
            tuple(v[i] for i in positions): k for k, v in zip(sorted(rows), values, strict=True)
        }
        found: set[tuple[Any, ...]] = set()
        if self.postgres:
            params = tuple(list(col) for col in zip(*values, strict=True))
            sql = f"{self._insert_head()} {self._unnest()} {returning}"
            found.update(tuple(r) for r in self.conn.exec_driver_sql(sql, params))
        else:
            # sqlite3's executemany cannot return rows: multi-row VALUES within the
            # bound-parameter limit (one statement for any batch up to ~30,000 values).
            per = max(1, MAX_PARAMS // len(self.names))
            row_marks = "(" + ", ".join("?" * len(self.names)) + ")"
            for part in chunks(values, per):
                sql = f"{self._insert_head()} VALUES {', '.join([row_marks] * len(part))} "
                flat = tuple(x for v in part for x in v)
                found.update(tuple(r) for r in self.conn.exec_driver_sql(sql + returning, flat))
        return {by_stored[k] for k in found if k in by_stored}
