"""Confluent Schema Registry: register/look up our schemas, frame values with their ids.

Used only when a registry URL is configured. Subjects follow the *RecordNameStrategy*
(subject = the record's full name, e.g. ``blog.BlogPostUpdated``): one topic carries
several event types, which the default TopicNameStrategy (one schema per topic) cannot
express. Values keep their Avro body; only the header changes (see
:mod:`schemas._wire`): ``0x00`` + 4-byte big-endian schema id.

The client is confluent-kafka's ``SchemaRegistryClient``; ``SchemaRegistryClient.new_client``
returns its in-memory mock for ``mock://`` URLs (the tests use it: no registry server
runs on the build machines).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import SchemaCatalog, SchemaVersion, reframe_single_object
from schemas.errors import BrokerUnavailable, ConfigurationError, UnknownSchemaError

__all__ = ["RegistryFraming", "registry_client"]


def registry_client(url: str) -> Any:
    """A registry client for ``url`` (``http(s)://…``, or ``mock://name`` in memory)."""
    try:
        return SchemaRegistryClient.new_client({"url": url})
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"schema registry URL {url!r}: {exc}") from exc


class RegistryFraming:
    """Maps our catalog's schemas to registry ids, both ways, caching every answer."""

    def __init__(self, client: Any, catalog: SchemaCatalog, *, auto_register: bool = True) -> None:
        self.client = client
        self.catalog = catalog
        self.auto_register = auto_register
        self._ids: dict[bytes, int] = {}
        self._sources: dict[int, str] = {}
        self._lock = threading.Lock()

    def schema_id(self, version: SchemaVersion) -> int:
        """The registry id of ``version`` (registering it under its record name if allowed)."""
        cached = self._ids.get(version.fingerprint)
        if cached is not None:
            return cached
        schema = Schema(json.dumps(dict(version.source)), "AVRO")
        try:
            if self.auto_register:
                schema_id = int(self.client.register_schema(version.full_name, schema))
            else:
                schema_id = int(self.client.lookup_schema(version.full_name, schema).schema_id)
        except SchemaRegistryError as exc:
            raise _translate(exc, f"{version.full_name} v{version.version}") from exc
        with self._lock:
            self._ids[version.fingerprint] = schema_id
        return schema_id

    def __call__(self, value: bytes) -> bytes:
        """Re-frame an Avro single-object value into the Confluent wire format."""
        version = self.catalog.by_fingerprint(value[2:10])
        return reframe_single_object(value, self.schema_id(version))

    def schema_source(self, schema_id: int) -> str:
        """The schema JSON for a registry id (what a reader of a framed value needs)."""
        cached = self._sources.get(schema_id)
        if cached is not None:
            return cached
        try:
            source = str(self.client.get_schema(schema_id).schema_str)
        except SchemaRegistryError as exc:
            raise _translate(exc, f"schema id {schema_id}") from exc
        with self._lock:
            self._sources[schema_id] = source
        return source


def _translate(exc: SchemaRegistryError, what: str) -> Exception:
    status = getattr(exc, "http_status_code", None)
    if status == 404:
        return UnknownSchemaError(f"the schema registry does not know {what}")
    if isinstance(status, int) and 400 <= status < 500:
        return ConfigurationError(f"the schema registry refused {what}: {exc}")
    return BrokerUnavailable(f"schema registry unavailable ({what}): {exc}")
