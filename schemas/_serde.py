"""Avro single-object encoding: ``0xC3 0x01`` + 8-byte CRC-64-AVRO fingerprint + body.

The registry-free default framing (Avro specification, "Single-object encoding").
Values in the Confluent wire format (``0x00`` + 4-byte schema id + body) decode too
when a ``schema_lookup`` (schema id → schema JSON, from a registry client) is given:
the first byte tells the two framings apart, so one topic may hold both.
Decoding looks the fingerprint up in the :class:`SchemaCatalog` and resolves the
writer's schema against the newest version of the same record (schema evolution),
with one pre-resolved reader per fingerprint so the hot path does no lookups by name.

The readers are parsed here *with* fastavro's "already parsed" marker. The catalog's
copies are parsed without it (for the canonical form), and ``schemaless_reader``
re-parses an unmarked schema on every call: that was ~40 % of a blog event's decode.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas._catalog import SchemaCatalog, SchemaVersion, schema_fingerprint
from schemas._validation import validate
from schemas._wire import CONFLUENT_HEADER_LEN, confluent_schema_id, is_confluent_framed
from schemas.errors import UndecodableError, UnknownSchemaError
from schemas.events import EventRecord

__all__ = ["SINGLE_OBJECT_MAGIC", "AvroSerde", "DecodedEvent"]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_HEADER_LEN = 10
_new_tuple = tuple.__new__


class DecodedEvent(NamedTuple):
    """A decoded, validated event: its record type, the writer's version and its fields.

    A named tuple (immutable): one is built per message on the hot path."""

    event_type: str
    schema_version: int
    #: typed after the newest schema version of ``event_type`` (see ``schemas.events``)
    record: EventRecord


@dataclass(frozen=True, slots=True)
class _Reader:
    event_type: str
    version: int
    writer: Any
    reader: Any  # None when the writer is already the newest version


class AvroSerde:
    """Encode and decode events with the single-object framing."""

    def __init__(
        self,
        catalog: SchemaCatalog,
        *,
        validate_events: bool = True,
        schema_lookup: Callable[[int], str] | None = None,
    ) -> None:
        self._catalog = catalog
        self._validate = validate_events
        self._readers: dict[bytes, _Reader] = {}
        #: single-object header (magic + fingerprint) → reader: one lookup per event
        self._by_header: dict[bytes, _Reader] = {}
        #: registry schema id → schema JSON; None: Confluent-framed values are undecodable
        self._schema_lookup = schema_lookup
        self._by_schema_id: dict[int, _Reader] = {}
        #: event type → the fields a reader uses (see :meth:`reading`); None: all of them
        self._reads: Mapping[str, frozenset[str]] | None = None
        #: False: readers without logical types (see :meth:`reading`)
        self._logical_types = True

    def reading(
        self, reads: Mapping[str, Iterable[str]] | None, *, logical_types: bool = True
    ) -> AvroSerde:
        """A decoder for a reader that uses only ``reads[event_type]`` of each event type.

        An event whose writer's schema already declares each of those fields (with the
        newest version's type, and ``event_id``) is decoded with the writer's schema
        alone: resolving it to the newest version would only add fields nobody reads
        (``slug`` to a v1 ``BlogPostUpdated`` cost ~1/3 of its decode). Its record then
        lacks the newer fields; events of types not in ``reads`` resolve as usual.

        ``logical_types=False``: records hold each logical type's Avro base value (a
        ``uuid`` as str, ``timestamp-millis`` as int milliseconds), not the objects.
        """
        view = AvroSerde(
            self._catalog, validate_events=self._validate, schema_lookup=self._schema_lookup
        )
        if reads is not None:
            view._reads = {t: frozenset(fields) | {"event_id"} for t, fields in reads.items()}
        view._logical_types = logical_types
        return view

    @property
    def catalog(self) -> SchemaCatalog:
        return self._catalog

    def encode(
        self, event_type: str, record: Mapping[str, Any], *, version: int | None = None
    ) -> bytes:
        """Encode ``record`` with the newest (or the given) version of ``event_type``."""
        schema = self._writer_schema(event_type, version)
        out = io.BytesIO()
        out.write(SINGLE_OBJECT_MAGIC)
        out.write(schema.fingerprint)
        schemaless_writer(out, schema.parsed, dict(record))
        return out.getvalue()

    def decode(self, data: bytes | None) -> DecodedEvent:
        """Decode one message value; raise a :class:`PoisonError` subclass when impossible."""
        if data is None:
            raise UndecodableError("message has no value (null payload)")
        reader = self._by_header.get(data[:_HEADER_LEN])
        if reader is not None:  # a header seen before: the hot path
            start = _HEADER_LEN
        elif is_confluent_framed(data):
            reader = self._registry_reader(confluent_schema_id(data))
            start = CONFLUENT_HEADER_LEN
        elif len(data) >= _HEADER_LEN and data[:2] == SINGLE_OBJECT_MAGIC:
            reader = self._by_header[data[:_HEADER_LEN]] = self._reader(data[2:_HEADER_LEN])
            start = _HEADER_LEN
        else:
            raise UndecodableError(
                f"neither Avro single-object nor Confluent framed "
                f"(first bytes {data[:4].hex() or 'none'})"
            )
        body = io.BytesIO(data)
        body.seek(start)
        try:
            record = schemaless_reader(body, reader.writer, reader.reader)
        except Exception as exc:
            raise UndecodableError(
                f"{reader.event_type}: Avro body does not decode: {exc!r}"
            ) from exc
        if body.tell() != len(data):
            raise UndecodableError(
                f"{reader.event_type}: {len(data) - body.tell()} trailing bytes after the record"
            )
        if not isinstance(record, dict):
            raise UndecodableError(f"{reader.event_type}: body is not a record")
        if self._validate:
            validate(reader.event_type, record)
        # fastavro returns the plain dict the event type's TypedDict describes; built with
        # tuple.__new__, not DecodedEvent(...): no Python-level __new__ per event
        return _new_tuple(DecodedEvent, (reader.event_type, reader.version, record))

    def _reader(self, fp: bytes) -> _Reader:
        cached = self._readers.get(fp)
        if cached is None:
            writer = self._catalog.by_fingerprint(fp)
            newest = self._catalog.latest(writer.full_name)
            as_written = newest.fingerprint == fp or self._suffices(
                writer.full_name, writer.source, newest.source
            )
            cached = _Reader(
                writer.full_name,
                writer.version,
                self._parse(writer.source),
                None if as_written else self._parse(newest.source),
            )
            self._readers[fp] = cached
        return cached

    def _registry_reader(self, schema_id: int) -> _Reader:
        cached = self._by_schema_id.get(schema_id)
        if cached is not None:
            return cached
        if self._schema_lookup is None:
            raise UndecodableError(
                f"Confluent-framed value (schema id {schema_id}) but no schema registry "
                "is configured (PROJECTIONIST_SCHEMA_REGISTRY_URL)"
            )
        source = self._schema_lookup(schema_id)
        try:
            parsed = parse_schema(json.loads(source), _write_hint=False)
            fp = schema_fingerprint(parsed)
            if not self._logical_types:
                parsed = parse_schema(_without_logical_types(json.loads(source)), _write_hint=False)
        except Exception as exc:
            raise UnknownSchemaError(
                f"registry schema id {schema_id} does not parse: {exc}"
            ) from exc
        try:
            # Known to the catalog: same pre-resolved reader as the single-object path.
            cached = self._reader(fp)
        except UnknownSchemaError:
            # Registered by another producer, not in our files: resolve to our newest
            # version of the same record (or read as written when we have none).
            name = parsed.get("name", "") if isinstance(parsed, dict) else ""
            newest: Any = None
            try:
                latest = self._catalog.latest(name)
            except UnknownSchemaError:
                pass
            else:
                doc = json.loads(source)
                as_written = isinstance(doc, dict) and self._suffices(name, doc, latest.source)
                newest = None if as_written else self._parse(latest.source)
            cached = _Reader(name, 0, parsed, newest)
        self._by_schema_id[schema_id] = cached
        return cached

    def _parse(self, source: Mapping[str, Any]) -> Any:
        """A reader's parsed schema (with fastavro's parsed marker: see the module doc)."""
        doc = dict(source)
        return parse_schema(doc if self._logical_types else _without_logical_types(doc))

    def _suffices(
        self, event_type: str, writer: Mapping[str, Any], newest: Mapping[str, Any]
    ) -> bool:
        """Whether the writer's schema has every field this reader uses, typed as the newest."""
        fields = (self._reads or {}).get(event_type)
        if fields is None:
            return False
        written = {f["name"]: f["type"] for f in writer.get("fields", ())}
        latest = {f["name"]: f["type"] for f in newest.get("fields", ())}
        return all(name in written and written[name] == latest.get(name) for name in fields)

    def _writer_schema(self, event_type: str, version: int | None) -> SchemaVersion:
        if version is None:
            return self._catalog.latest(event_type)
        for v in self._catalog.versions(event_type):
            if v.version == version:
                return v
        raise UnknownSchemaError(f"{event_type} has no version {version}")


def _without_logical_types(schema: Any) -> Any:
    """``schema`` with every ``logicalType`` removed: the values decode as their base type."""
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(v) for v in schema]
    return schema
