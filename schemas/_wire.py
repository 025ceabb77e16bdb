"""The Confluent Schema Registry wire format, byte for byte, without a registry client.

Confluent's serializers frame each value as::

    byte 0      magic byte 0x00
    bytes 1-4   schema id, a 4-byte big-endian (network order) unsigned integer
    bytes 5-    the Avro binary body (no schema, no fingerprint)

The Avro body is the same bytes that follow the 10-byte single-object header, so
re-framing a single-object value for a registry is a header swap, never a re-encode.
The registry client itself lives on the producer/consumer side (``schemas`` imports no
Kafka code); here is only the framing, which the tests check against the format's
specification.
"""

from __future__ import annotations

__all__ = [
    "CONFLUENT_MAGIC",
    "confluent_frame",
    "confluent_schema_id",
    "is_confluent_framed",
    "reframe_single_object",
]

CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_LEN = 5
_MAX_ID = 2**32 - 1


def confluent_frame(schema_id: int, body: bytes) -> bytes:
    """``0x00`` + schema id (4 bytes, big-endian) + Avro body."""
    if not 0 <= schema_id <= _MAX_ID:
        raise ValueError(f"schema id {schema_id} does not fit 4 unsigned bytes")
    return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big") + body


def is_confluent_framed(data: bytes) -> bool:
    return len(data) >= CONFLUENT_HEADER_LEN and data[:1] == CONFLUENT_MAGIC


def confluent_schema_id(data: bytes) -> int:
    """The schema id of a Confluent-framed value (callers check the magic byte first)."""
    return int.from_bytes(data[1:CONFLUENT_HEADER_LEN], "big")


def reframe_single_object(data: bytes, schema_id: int) -> bytes:
    """Turn an Avro single-object value (``C3 01`` + 8-byte fingerprint + body) into the
    Confluent framing of the same body under ``schema_id``."""
    if data[:2] != b"\xc3\x01" or len(data) < 10:
        raise ValueError("not an Avro single-object encoded value")
    return confluent_frame(schema_id, data[10:])
