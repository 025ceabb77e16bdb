"""The event contract: Avro schemas, their catalog, the wire framing and the error tree.

``schemas`` imports nothing else of Projectionist; every other package builds on it.
"""

from schemas._catalog import SchemaCatalog, SchemaVersion
from schemas._serde import SINGLE_OBJECT_MAGIC, AvroSerde, DecodedEvent
from schemas._validation import validate

__all__ = [
    "SINGLE_OBJECT_MAGIC",
    "AvroSerde",
    "DecodedEvent",
    "SchemaCatalog",
    "SchemaVersion",
    "validate",
]
