"""Columns of a declarative table, typed from the Avro schema of its event.

Each top-level field of the event's newest schema version becomes one column:

==========================================  ======================================
Avro                                        column
==========================================  ======================================
boolean / int / long                        BOOLEAN / INTEGER / BIGINT
float, double                               DOUBLE
string, enum                                TEXT (``uuid``: VARCHAR(36))
bytes, fixed                                BLOB / BYTEA (``decimal``: NUMERIC(p, s))
int ``date``; ``time-*``                    DATE; TIME
long ``timestamp-*`` / ``local-timestamp-*``  timestamp with / without time zone
array, map, record, other unions            TEXT holding JSON
``["null", T]``                             T, nullable
==========================================  ======================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    Time,
)
from sqlalchemy.types import TypeEngine

__all__ = ["ColumnPlan", "plan_column"]

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """One field as a column: its SQL type, whether NULL is allowed, how values convert."""

    name: str
    type: TypeEngine[Any]
    nullable: bool
    convert: Convert
    #: the field is ``["null", T]`` with default null: every event written before the
    #: field existed reads as NULL, so adding the column in place equals a rebuild
    null_by_default: bool


def _same(value: Any) -> Any:
    return value


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value


def _json(value: Any) -> Any:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


_PRIMITIVES: dict[str, tuple[Callable[[], TypeEngine[Any]], Convert]] = {
    "boolean": (Boolean, _same),
    "int": (Integer, _same),
    "long": (BigInteger, _same),
    "float": (Double, _same),
    "double": (Double, _same),
    "string": (Text, _same),
    "bytes": (LargeBinary, _same),
}


#: (logical type, base type) → column type and conversion; base None: any base
_LOGICAL: dict[tuple[str, str | None], tuple[Callable[[], TypeEngine[Any]], Convert]] = {
    ("uuid", None): (lambda: String(36), _text),
    ("date", "int"): (Date, _same),
    ("time-millis", None): (Time, _same),
    ("time-micros", None): (Time, _same),
    ("timestamp-millis", "long"): (lambda: DateTime(timezone=True), _utc),
    ("timestamp-micros", "long"): (lambda: DateTime(timezone=True), _utc),
    ("local-timestamp-millis", "long"): (lambda: DateTime(timezone=False), _same),
    ("local-timestamp-micros", "long"): (lambda: DateTime(timezone=False), _same),
}
_NAMED: dict[str, tuple[Callable[[], TypeEngine[Any]], Convert]] = {
    "enum": (Text, _same),
    "fixed": (LargeBinary, _same),
}


def _scalar(avro: Any) -> tuple[TypeEngine[Any], Convert]:
    """The column type of a non-union Avro type (JSON text when it has no scalar column)."""
    base = avro.get("type") if isinstance(avro, Mapping) else avro
    logical = avro.get("logicalType") if isinstance(avro, Mapping) else None
    if isinstance(avro, Mapping) and logical == "decimal" and base in ("bytes", "fixed"):
        return Numeric(int(avro.get("precision", 38)), int(avro.get("scale", 0))), _same
    found = (
        _LOGICAL.get((str(logical), base)) or _LOGICAL.get((str(logical), None))
        if logical
        else None
    )
    found = found or (_PRIMITIVES.get(base) or _NAMED.get(base) if isinstance(base, str) else None)
    if found is None:  # array, map, record, a type named elsewhere, a multi-type union
        return Text(), _json
    make, convert = found
    return make(), convert


def plan_column(field: Mapping[str, Any]) -> ColumnPlan:
    """The column of one record field (a field of the schema's ``fields`` list)."""
    avro = field["type"]
    nullable = False
    if isinstance(avro, list):
        others = [t for t in avro if t != "null"]
        nullable = len(others) < len(avro)
        avro = others[0] if len(others) == 1 else {"type": "union"}
    sql_type, convert = _scalar(avro)
    null_default = nullable and "default" in field and field["default"] is None
    return ColumnPlan(str(field["name"]), sql_type, nullable, convert, null_default)
