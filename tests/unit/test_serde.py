"""Schemas and the single-object framing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastavro import parse_schema

from producers import blog_events, order_events
from schemas import SINGLE_OBJECT_MAGIC, AvroSerde, SchemaCatalog
from schemas._catalog import schema_fingerprint
from schemas.errors import InvalidEventError, PoisonError, UndecodableError, UnknownSchemaError


@pytest.fixture(scope="module")
def serde() -> AvroSerde:
    return AvroSerde(SchemaCatalog.load())


def _normalise(record: dict) -> dict:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in record.items()}


def test_fingerprint_matches_the_avro_spec_vector() -> None:
    """CRC-64-AVRO of the schema "null" is 0x63DD24E7CC258F8A, written little-endian."""
    assert schema_fingerprint(parse_schema("null")) == (0x63DD24E7CC258F8A).to_bytes(8, "little")


def test_catalog_holds_every_shipped_schema() -> None:
    """The three event types of the contract are in the catalog."""
    names = SchemaCatalog.load().names()
    assert names == ["blog.BlogPostDeleted", "blog.BlogPostUpdated", "orders.OrderFulfilled"]


@pytest.mark.parametrize(
    "event",
    [*blog_events(posts=20, delete_ratio=0.5, seed=5)[:40], *order_events(orders=5)],
    ids=lambda e: e.event_type,
)
def test_round_trip(serde: AvroSerde, event) -> None:
    """Every event type encodes to single-object bytes and decodes to the same record."""
    data = serde.encode(event.event_type, event.record)
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == serde.catalog.latest(event.event_type).fingerprint
    decoded = serde.decode(data)
    assert decoded.event_type == event.event_type
    got = _normalise(decoded.record)
    assert {k: got[k] for k in event.record} == event.record
    # fields a newer version added (blog.BlogPostUpdated v2: slug) take their default
    assert all(got[k] is None for k in got.keys() - event.record.keys())


def test_corrupt_body_is_poison(serde: AvroSerde) -> None:
    """Truncated Avro bytes raise UndecodableError, a PoisonError."""
    ev = blog_events(posts=1)[0]
    data = serde.encode(ev.event_type, ev.record)
    with pytest.raises(UndecodableError):
        serde.decode(data[:-7])
    with pytest.raises(PoisonError):
        serde.decode(data + b"\x00\x01")


@pytest.mark.parametrize("payload", [None, b"", b"not avro at all", b"\x00\x00\x00\x00\x01abc"])
def test_foreign_bytes_are_poison(serde: AvroSerde, payload: bytes | None) -> None:
    """Null, empty, text and other framings are undecodable, not a crash."""
    with pytest.raises(UndecodableError):
        serde.decode(payload)


def test_unknown_fingerprint_is_poison(serde: AvroSerde) -> None:
    """A fingerprint that no schema file has raises UnknownSchemaError."""
    with pytest.raises(UnknownSchemaError, match="unknown schema fingerprint"):
        serde.decode(SINGLE_OBJECT_MAGIC + b"\x01" * 8 + b"\x02")


def test_invalid_event_is_poison(serde: AvroSerde) -> None:
    """A schema-valid order with a negative quantity fails validation."""
    order = order_events(orders=1)[0].record
    bad = {**order, "lines": [{**order["lines"][0], "quantity": -1}]}
    data = serde.encode("orders.OrderFulfilled", bad)
    with pytest.raises(InvalidEventError, match="quantity"):
        serde.decode(data)


def test_money_is_integer_minor_units() -> None:
    """No float anywhere in the order schema (money stays exact)."""
    catalog = SchemaCatalog.load()
    text = str(catalog.latest("orders.OrderFulfilled").source)
    assert "float" not in text
    assert "double" not in text


def test_timestamps_decode_as_utc(serde: AvroSerde) -> None:
    """timestamp-millis fields come back as aware UTC datetimes."""
    ev = blog_events(posts=1)[0]
    decoded = serde.decode(serde.encode(ev.event_type, ev.record))
    assert decoded.record["updated_at"].tzinfo == UTC
    assert decoded.record["updated_at"] == ev.record["updated_at"]
    assert isinstance(ev.record["creation_date"], datetime)


_BLOG_READS = {"blog.BlogPostUpdated": frozenset(("post_id", "title", "tags", "version"))}


def test_a_reader_of_old_fields_decodes_old_events_as_written(serde: AvroSerde) -> None:
    """Declared reads that v1 already has: a v1 event decodes without v2's slug, same values."""
    ev = next(e for e in blog_events(posts=3, seed=9) if e.event_type == "blog.BlogPostUpdated")
    record = {k: v for k, v in ev.record.items() if k != "slug"}
    v1 = serde.encode(ev.event_type, record, version=1)
    reader = serde.reading(_BLOG_READS)
    as_written = reader.decode(v1)
    resolved = serde.decode(v1)
    assert "slug" not in as_written.record
    assert resolved.record["slug"] is None
    assert as_written.record == {k: v for k, v in resolved.record.items() if k != "slug"}
    # a v2 event still carries its slug: it is the newest version, read as written anyway
    v2 = reader.decode(serde.encode(ev.event_type, {**record, "slug": "s"}))
    assert v2.record["slug"] == "s"


def test_a_reader_of_a_newer_field_still_resolves(serde: AvroSerde) -> None:
    """Reading a field only v2 declares (slug): v1 events resolve to v2 and get its default."""
    ev = next(e for e in blog_events(posts=3, seed=9) if e.event_type == "blog.BlogPostUpdated")
    record = {k: v for k, v in ev.record.items() if k != "slug"}
    v1 = serde.encode(ev.event_type, record, version=1)
    reader = serde.reading({"blog.BlogPostUpdated": frozenset(("post_id", "slug"))})
    assert reader.decode(v1).record["slug"] is None
    # and an event type the declaration does not name resolves as before
    assert serde.reading({}).decode(v1).record["slug"] is None


def test_the_blog_projection_declares_fields_its_events_have() -> None:
    """Every field BlogProjection.reads names exists in the newest schema of its event type
    (a misspelt name would make every old event resolve again, silently slower)."""
    from projections import BlogProjection

    catalog = SchemaCatalog.load()
    reads = BlogProjection.reads or {}
    assert reads
    for event_type, fields in reads.items():
        names = {f["name"] for f in catalog.latest(event_type).source["fields"]}
        assert fields <= names, fields - names
