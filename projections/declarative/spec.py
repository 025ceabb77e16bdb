"""The TOML file of declarative table projections, read and checked against the schemas.

One file may declare several projections, one table each::

    [projections.crm_customers]          # the projection's name (CLI, metrics, group id)
    topic = "crm.customers"              # the topic it consumes
    event = "crm.CustomerUpdated"        # rows come from this event type
    key = "customer_id"                  # one row per value of this field (primary key)
    newest_by = "version"                # version guard: a row is replaced only by a greater one
    delete_on = "crm.CustomerDeleted"    # optional: this event type deletes the key's row
    columns = ["customer_id", "name"]    # optional: default every top-level field
    table = "customers"                  # optional: default the projection's name
    version = 1                          # optional: bump when the meaning changes (rebuild)

Every mistake is a :class:`ConfigurationError` naming the file, the projection and the
option: an unknown option, an event type no schema defines, a field the event lacks.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import SchemaCatalog
from schemas.errors import ConfigurationError, UnknownSchemaError

__all__ = ["TableSpec", "read_table_specs"]

#: projection and table names become SQL identifiers, group ids and metric labels
NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_REQUIRED = ("topic", "event", "key", "newest_by")
_OPTIONAL = ("delete_on", "columns", "table", "version")
#: bookkeeping columns of every declarative table
DELETED, EVENT_ID = "_deleted", "_event_id"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One declarative projection, as its file says it (checked against the catalog)."""

    name: str
    topic: str
    event: str
    key: str
    newest_by: str
    table: str
    delete_on: str | None = None
    columns: tuple[str, ...] | None = None  # None: every top-level field of the event
    version: int = 1
    source: str = ""  # "<file> [projections.<name>]", for error messages


def read_table_specs(path: Path, catalog: SchemaCatalog) -> list[TableSpec]:
    """Every projection the file declares, each checked against ``catalog``."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"table projections file {path.name}: {exc.strerror or exc}"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path.name}: not valid TOML ({exc})") from None
    unknown = sorted(set(document) - {"projections"})
    declared = document.get("projections")
    if unknown or not isinstance(declared, dict) or not declared:
        raise ConfigurationError(
            f"{path.name}: declare each table as [projections.<name>]"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    return [_spec(path.name, name, options, catalog) for name, options in declared.items()]


def _spec(file: str, name: str, options: Any, catalog: SchemaCatalog) -> TableSpec:
    where = f"{file} [projections.{name}]"

    def fail(message: str) -> ConfigurationError:
        return ConfigurationError(f"{where}: {message}")

    if not NAME.match(name):
        raise fail("a projection name is lower-case letters, digits and _ (at most 48)")
    if not isinstance(options, dict):
        raise fail("expected a table of options")
    unknown = sorted(set(options) - {*_REQUIRED, *_OPTIONAL})
    if unknown:
        raise fail(
            f"unknown option(s) {', '.join(unknown)}; known: {', '.join(_REQUIRED + _OPTIONAL)}"
        )
    for option in _REQUIRED:
        if not isinstance(options.get(option), str) or not options[option]:
            raise fail(f'{option} = "…" is required')
    table = options.get("table", name)
    if not isinstance(table, str) or not NAME.match(table):
        raise fail("table is lower-case letters, digits and _ (at most 48)")
    version = options.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail("version is a whole number ≥ 1")
    columns = options.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
    ):
        raise fail('columns is a list of field names: ["a", "b"]')
    delete_on = options.get("delete_on")
    if delete_on is not None and not isinstance(delete_on, str):
        raise fail('delete_on = "<event type>"')
    spec = TableSpec(
        name=name,
        topic=options["topic"],
        event=options["event"],
        key=options["key"],
        newest_by=options["newest_by"],
        table=table,
        delete_on=delete_on,
        columns=tuple(dict.fromkeys(columns)) if columns is not None else None,
        version=version,
        source=where,
    )
    _check(spec, catalog, fail)
    return spec


def fields_of(catalog: SchemaCatalog, event: str) -> dict[str, Mapping[str, Any]]:
    """The top-level fields of the newest schema of ``event``, by name."""
    fields = catalog.latest(event).source.get("fields", [])
    return {str(f["name"]): f for f in fields}


def _check(spec: TableSpec, catalog: SchemaCatalog, fail: Any) -> None:
    events = [spec.event] + ([spec.delete_on] if spec.delete_on else [])
    found: dict[str, dict[str, Mapping[str, Any]]] = {}
    for event in events:
        try:
            found[event] = fields_of(catalog, event)
        except UnknownSchemaError:
            raise fail(
                f"no schema defines {event!r} (add its .avsc to PROJECTIONIST_SCHEMA_PATHS)"
            ) from None
    fields = found[spec.event]
    for event, its_fields in found.items():  # the event first, then the delete event
        for option in ("key", "newest_by"):
            field = getattr(spec, option)
            if field not in its_fields:
                raise fail(f"{option} {field!r} is not a field of {event}")
            if _nullable(its_fields[field]["type"]):
                raise fail(f"{option} {field!r} of {event} may be null; it must always be set")
        if not _orderable(its_fields[spec.newest_by]["type"]):
            raise fail(f"newest_by {spec.newest_by!r} must be an int, a long or a timestamp")
    unknown = sorted(set(spec.columns or ()) - set(fields))
    if unknown:
        raise fail(f"column(s) {', '.join(unknown)} are not fields of {spec.event}")
    reserved = sorted({DELETED, EVENT_ID} & set(fields))
    if reserved:
        raise fail(f"field(s) {', '.join(reserved)} clash with the table's own columns")


def _nullable(avro: Any) -> bool:
    return avro == "null" or (isinstance(avro, list) and "null" in avro)


def _orderable(avro: Any) -> bool:
    if avro in ("int", "long"):
        return True
    return isinstance(avro, Mapping) and avro.get("type") in ("int", "long")


def spec_columns(spec: TableSpec, catalog: SchemaCatalog) -> Sequence[Mapping[str, Any]]:
    """The fields that become columns, key and version guard first."""
    fields = fields_of(catalog, spec.event)
    wanted = list(spec.columns) if spec.columns is not None else list(fields)
    ordered = dict.fromkeys([spec.key, spec.newest_by, *wanted])
    return [fields[name] for name in ordered]
