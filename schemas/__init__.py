"""The event contract: Avro schemas, their catalog, the wire framing and the error tree.

``schemas`` imports nothing else of Projectionist; every other package builds on it.
"""

from schemas._catalog import SchemaCatalog, SchemaVersion
from schemas._serde import SINGLE_OBJECT_MAGIC, AvroSerde, DecodedEvent
from schemas._validation import validate

__all__ = [  # noqa: RUF022 - sorted case-insensitively, as the test checks
    "AvroSerde",
    "DecodedEvent",
    "SINGLE_OBJECT_MAGIC",
    "SchemaCatalog",
    "SchemaVersion",
    "validate",
]
