"""The event contract: Avro schemas, their catalog, the wire framing and the error tree.

``schemas`` imports nothing else of Projectionist; every other package builds on it.
"""

from schemas._catalog import SchemaCatalog, SchemaVersion
from schemas._compat import Incompatibility, check_catalog
from schemas._serde import SINGLE_OBJECT_MAGIC, AvroSerde, DecodedEvent
from schemas._validation import validate
from schemas._wire import CONFLUENT_MAGIC, confluent_frame, reframe_single_object

__all__ = [  # noqa: RUF022 - sorted case-insensitively, as the test checks
    "AvroSerde",
    "check_catalog",
    "confluent_frame",
    "CONFLUENT_MAGIC",
    "DecodedEvent",
    "Incompatibility",
    "reframe_single_object",
    "SchemaCatalog",
    "SchemaVersion",
    "SINGLE_OBJECT_MAGIC",
    "validate",
]
