"""The event contract: Avro schemas, their catalog, the wire framing and the error tree.

``schemas`` imports nothing else of Projectionist; every other package builds on it.
"""

from schemas._catalog import SchemaCatalog, SchemaVersion
from schemas._compat import Incompatibility, check_catalog
from schemas._serde import SINGLE_OBJECT_MAGIC, AvroSerde, DecodedEvent
from schemas._validation import validate
from schemas._wire import CONFLUENT_MAGIC, confluent_frame, reframe_single_object

__all__ = [
    "CONFLUENT_MAGIC",
    "SINGLE_OBJECT_MAGIC",
    "AvroSerde",
    "DecodedEvent",
    "Incompatibility",
    "SchemaCatalog",
    "SchemaVersion",
    "check_catalog",
    "confluent_frame",
    "reframe_single_object",
    "validate",
]
