"""A declarative table projection: the newest row per key, version-guarded, exactly once.

The table ``<table>_v<generation>`` has one column per field (see ``columns``), the key
as primary key, and two of its own: ``_deleted`` (a tombstone) and ``_event_id`` (the
event that wrote the row). A batch is one :func:`~projections.writes.upsert_newest`
guarded by ``(newest_by, _deleted)``: a row is replaced only by a greater version, so a
replay, a re-published or a late event never overwrites a newer row, and the table is
a pure function of the log whatever the batching. A delete is a tombstone of its own
version (content NULL, ``_deleted`` true): a replayed older update cannot resurrect the
key, while a later version can (the aggregate came back). Queries select
``WHERE NOT _deleted``.

**Schema evolution** (:meth:`TableProjection.upgrade`, run when a consumer starts): a
new optional field (``["null", T]`` with default null) of the event, with ``columns``
left to its default, is added in place as a nullable column — every stored row was
written from an event that reads that field as NULL, so the table equals a rebuild.
Any other difference (a new field with another default, a field removed, a type
changed, an explicit ``columns`` list that grew) refuses to start with one line that
says to run ``projectionist rebuild <name>``: the next generation is created from the
new definition and swapped in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, Column, Connection, MetaData, String, Table, inspect, text

from projections._base import ApplyResult, Projection
from projections._event import Event
from projections.declarative.columns import ColumnPlan, plan_column
from projections.declarative.spec import DELETED, EVENT_ID, TableSpec, spec_columns
from projections.generations.versions import VersionStore
from projections.writes import upsert_newest
from schemas import SchemaCatalog
from schemas.errors import ConfigurationError, InvalidEventError

__all__ = ["TableProjection"]


class TableProjection(Projection):
    """The projection a :class:`TableSpec` declares (one table, newest row per key)."""

    idempotent_replay = True  # version-guarded: replaying changes nothing newer

    def __init__(
        self, spec: TableSpec, catalog: SchemaCatalog, *, generation: int | None = None
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.topics = (spec.topic,)
        self.plans = [plan_column(f) for f in spec_columns(spec, catalog)]
        self._guard = (spec.newest_by, DELETED)
        super().__init__(generation=generation)

    def define_tables(self, metadata: MetaData) -> None:
        columns = [
            Column(
                p.name,
                p.type,
                primary_key=p.name == self.spec.key,
                # content is NULL in a tombstone, whatever the schema says
                nullable=p.name not in (self.spec.key, self.spec.newest_by),
            )
            for p in self.plans
        ]
        self.table = Table(
            self.table_name(self.spec.table),
            metadata,
            *columns,
            Column(DELETED, Boolean, nullable=False),
            Column(EVENT_ID, String(64), nullable=False),
        )

    def apply(self, conn: Connection, events: Sequence[Event]) -> ApplyResult:
        spec = self.spec
        rows: list[dict[str, Any]] = []
        for event in events:
            if event.event_type == spec.event:
                rows.append(self._row(event, deleted=False))
            elif event.event_type == spec.delete_on:
                rows.append(self._row(event, deleted=True))
        if not rows:
            return ApplyResult(applied=0)
        written = upsert_newest(conn, self.table, rows, newest_by=self._guard)
        return ApplyResult(applied=written, stale=len(rows) - written)

    def _row(self, event: Event, *, deleted: bool) -> dict[str, Any]:
        data = event.data
        row: dict[str, Any] = {DELETED: deleted, EVENT_ID: event.event_id}
        for plan in self.plans:
            is_guard = plan.name in (self.spec.key, self.spec.newest_by)
            row[plan.name] = plan.convert(data.get(plan.name)) if is_guard or not deleted else None
        for name in (self.spec.key, self.spec.newest_by):
            if row[name] is None:
                raise InvalidEventError(f"{event.event_type}: {name} is missing")
        return row

    def upgrade(self, conn: Connection) -> None:
        table = self.table
        inspector = inspect(conn)
        if not inspector.has_table(table.name):
            return
        dialect = conn.dialect
        stored = {c["name"]: c for c in inspector.get_columns(table.name)}
        by_name = {p.name: p for p in self.plans}
        addable: list[Column[Any]] = []
        problems: list[str] = []
        for column in table.columns:
            found = stored.get(column.name)
            if found is None:
                plan = by_name.get(column.name)
                if plan is not None and self._addable(plan):
                    addable.append(column)
                else:
                    problems.append(f"column {column.name} is new")
            elif _type_sql(found["type"], dialect) != _type_sql(column.type, dialect):
                problems.append(
                    f"column {column.name} is {_type_sql(found['type'], dialect)}, "
                    f"now {_type_sql(column.type, dialect)}"
                )
        problems += [f"column {n} is no longer defined" for n in stored if n not in table.c]
        if problems:
            raise ConfigurationError(
                f"{table.name} no longer matches {self.spec.source or self.name} "
                f"({'; '.join(problems)}): run `projectionist rebuild {self.name}` to build "
                "the next generation with the new columns"
            )
        if not addable:
            return
        quote = dialect.identifier_preparer.quote
        for column in addable:
            conn.execute(
                text(
                    f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} "
                    f"{column.type.compile(dialect=dialect)}"
                )
            )
        # PostgreSQL expands a view's * when it is created: point it again to show the column.
        VersionStore().refresh_views(conn, self)

    def _addable(self, plan: ColumnPlan) -> bool:
        return self.spec.columns is None and plan.nullable and plan.null_by_default


def _type_sql(type_: Any, dialect: Any) -> str:
    return str(type_.compile(dialect=dialect)).upper().replace(" ", "")
