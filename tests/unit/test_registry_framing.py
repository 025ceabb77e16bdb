"""Confluent Schema Registry framing: the wire format byte for byte, and the client path on
the registry client's built-in mock (no registry server runs on the build machines)."""

from __future__ import annotations

import json
import struct

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from producers import blog_events, order_events
from producers.schema_registry import RegistryFraming, registry_client
from schemas import (
    CONFLUENT_MAGIC,
    AvroSerde,
    SchemaCatalog,
    confluent_frame,
    reframe_single_object,
)
from schemas.errors import UndecodableError, UnknownSchemaError

CTX = SerializationContext("blog.posts", MessageField.VALUE)


@pytest.fixture
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load()


@pytest.fixture
def registry(catalog: SchemaCatalog) -> RegistryFraming:
    return RegistryFraming(registry_client("mock://framing-test"), catalog)


def test_wire_format_is_magic_zero_then_big_endian_id_then_body() -> None:
    """Per the format's spec: byte 0 = 0x00, bytes 1-4 = schema id (network order), then the body."""
    framed = confluent_frame(0x01020304, b"\x02ab")
    assert framed == b"\x00\x01\x02\x03\x04\x02ab"
    assert framed == struct.pack(">bI", 0, 0x01020304) + b"\x02ab"
    assert CONFLUENT_MAGIC == b"\x00"
    with pytest.raises(ValueError, match="4 unsigned bytes"):
        confluent_frame(2**32, b"")


def test_reframing_keeps_the_avro_body_and_swaps_the_header(catalog: SchemaCatalog) -> None:
    """Single-object C3 01 + fingerprint + body becomes 00 + id + the very same body."""
    ev = blog_events(posts=1)[0]
    single = AvroSerde(catalog).encode(ev.event_type, ev.record)
    framed = reframe_single_object(single, 42)
    assert framed[:5] == b"\x00\x00\x00\x00\x2a"
    assert framed[5:] == single[10:]


def test_our_bytes_equal_confluents_own_serializer(catalog: SchemaCatalog) -> None:
    """For the same registry and record, our framing is byte-identical to confluent-kafka's
    AvroSerializer (RecordNameStrategy), and its AvroDeserializer reads ours."""
    client = SchemaRegistryClient.new_client({"url": "mock://byte-for-byte"})
    ours = RegistryFraming(client, catalog)
    serde = AvroSerde(catalog)
    for ev in [*blog_events(posts=5, delete_ratio=1.0, seed=2)[:8], *order_events(orders=2)]:
        schema = json.dumps(dict(catalog.latest(ev.event_type).source))
        theirs = AvroSerializer(
            client, schema, conf={"subject.name.strategy": record_subject_name_strategy}
        )
        expected = theirs(ev.record, CTX)
        assert ours(serde.encode(ev.event_type, ev.record)) == expected, ev.event_type
        decoded = AvroDeserializer(client)(expected, CTX)
        assert decoded is not None
        assert str(decoded["event_id"]) == ev.record["event_id"]


def test_registers_under_the_record_name_and_caches(
    registry: RegistryFraming, catalog: SchemaCatalog
) -> None:
    """Subjects follow RecordNameStrategy (one topic, several record types); ids are cached."""
    v1, v2 = catalog.versions("blog.BlogPostUpdated")
    id1, id2 = registry.schema_id(v1), registry.schema_id(v2)
    assert id1 != id2
    assert registry.schema_id(v2) == id2
    assert sorted(registry.client.get_versions("blog.BlogPostUpdated")) == [1, 2]
    assert json.loads(registry.schema_source(id1)) == dict(v1.source)


def test_lookup_only_mode_refuses_unknown_schemas(catalog: SchemaCatalog) -> None:
    """With auto-registration off, a schema the registry lacks is an UnknownSchemaError."""
    framing = RegistryFraming(registry_client("mock://lookup-only"), catalog, auto_register=False)
    with pytest.raises(UnknownSchemaError, match="does not know"):
        framing.schema_id(catalog.latest("blog.BlogPostDeleted"))
    framing.client.register_schema(
        "blog.BlogPostDeleted",
        Schema(json.dumps(dict(catalog.latest("blog.BlogPostDeleted").source)), "AVRO"),
    )
    assert framing.schema_id(catalog.latest("blog.BlogPostDeleted")) >= 1


def test_one_decoder_reads_both_framings_and_both_versions(
    registry: RegistryFraming, catalog: SchemaCatalog
) -> None:
    """The first byte picks the framing; v1 and v2 bodies both resolve to the newest reader."""
    plain = AvroSerde(catalog)
    reader = AvroSerde(catalog, schema_lookup=registry.schema_source)
    ev = blog_events(posts=1)[0]
    for version in (1, 2):
        single = plain.encode(ev.event_type, ev.record, version=version)
        for data in (single, registry(single)):
            decoded = reader.decode(data)
            assert decoded.schema_version == version
            assert decoded.record["title"] == ev.record["title"]
            assert decoded.record["slug"] is None


def test_unknown_schema_id_and_missing_registry_are_poison(
    registry: RegistryFraming, catalog: SchemaCatalog
) -> None:
    """An id the registry lacks is UnknownSchemaError; framed bytes without a registry are undecodable."""
    reader = AvroSerde(catalog, schema_lookup=registry.schema_source)
    with pytest.raises(UnknownSchemaError):
        reader.decode(confluent_frame(999, b"\x00"))
    ev = blog_events(posts=1)[0]
    framed = registry(AvroSerde(catalog).encode(ev.event_type, ev.record))
    with pytest.raises(UndecodableError, match="no schema registry is configured"):
        AvroSerde(catalog).decode(framed)


def test_a_foreign_schema_from_the_registry_resolves_to_our_newest(catalog: SchemaCatalog) -> None:
    """A writer schema only the registry knows (another team's v1.5) is read via our newest version."""
    client = registry_client("mock://foreign")
    source = dict(catalog.latest("blog.BlogPostDeleted").source)
    source = {
        **source,
        "fields": [*source["fields"], {"name": "reason", "type": "string", "default": ""}],
    }
    schema_id = client.register_schema("blog.BlogPostDeleted", Schema(json.dumps(source), "AVRO"))
    theirs = AvroSerializer(
        client,
        json.dumps(source),
        conf={
            "subject.name.strategy": record_subject_name_strategy,
            "auto.register.schemas": False,
            "use.latest.version": False,
        },
    )
    ev = next(
        e for e in blog_events(posts=20, delete_ratio=1.0) if e.event_type == "blog.BlogPostDeleted"
    )
    data = theirs({**ev.record, "reason": "spam"}, CTX)
    assert data[1:5] == schema_id.to_bytes(4, "big")
    decoded = AvroSerde(
        catalog, schema_lookup=RegistryFraming(client, catalog).schema_source
    ).decode(data)
    assert decoded.event_type == "blog.BlogPostDeleted"
    assert decoded.record["post_id"] == ev.record["post_id"]
    assert "reason" not in decoded.record


def test_publisher_applies_the_registry_framing(
    registry: RegistryFraming, catalog: SchemaCatalog
) -> None:
    """EventPublisher(framing=…) hands the producer Confluent-framed values."""
    from producers import EventPublisher

    sent: list[bytes] = []

    class _Producer:
        def __init__(self, _conf: dict) -> None: ...
        def produce(self, topic: str, value: bytes, **_: object) -> None:
            sent.append(value)

    publisher = EventPublisher(
        {}, serde=AvroSerde(catalog), producer_factory=_Producer, framing=registry
    )
    ev = blog_events(posts=1)[0]
    publisher.publish("t", ev.event_type, ev.record, key=ev.key)
    assert sent[0][:1] == b"\x00"
    assert (
        AvroSerde(catalog, schema_lookup=registry.schema_source).decode(sent[0]).record["post_id"]
        == ev.key
    )
