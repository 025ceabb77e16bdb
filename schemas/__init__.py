"""The event contract: Avro schemas, their catalog, the wire framing, the typed events and
the error tree — plus the two rules every layer shares (``backoff``, ``utc``).

``schemas`` imports nothing else of Projectionist; every other package builds on it.
"""

from schemas._catalog import SchemaCatalog, SchemaVersion
from schemas._compat import Incompatibility, check_catalog
from schemas._serde import SINGLE_OBJECT_MAGIC, AvroSerde, DecodedEvent
from schemas._validation import (
    MAX_EMAIL_LENGTH,
    MAX_ID_LENGTH,
    MAX_ORDER_TOTAL_MINOR,
    check_email_address,
    validate,
)
from schemas._wire import CONFLUENT_MAGIC, confluent_frame, reframe_single_object
from schemas.events import (
    BLOG_POST_DELETED,
    BLOG_POST_UPDATED,
    EVENT_TYPES,
    ORDER_FULFILLED,
    BlogPostDeleted,
    BlogPostUpdated,
    EventRecord,
    OrderFulfilled,
    OrderLine,
)

__all__ = [
    "BLOG_POST_DELETED",
    "BLOG_POST_UPDATED",
    "CONFLUENT_MAGIC",
    "EVENT_TYPES",
    "MAX_EMAIL_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_ORDER_TOTAL_MINOR",
    "ORDER_FULFILLED",
    "SINGLE_OBJECT_MAGIC",
    "AvroSerde",
    "BlogPostDeleted",
    "BlogPostUpdated",
    "DecodedEvent",
    "EventRecord",
    "Incompatibility",
    "OrderFulfilled",
    "OrderLine",
    "SchemaCatalog",
    "SchemaVersion",
    "check_catalog",
    "check_email_address",
    "confluent_frame",
    "reframe_single_object",
    "validate",
]
