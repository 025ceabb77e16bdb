"""The read models: tables, one module per projection, checkpoints, and the database edge.

``projections`` depends on ``schemas`` only; it never imports ``confluent_kafka``.
"""

from projections._base import ApplyResult, Projection
from projections._db import database_errors, ddl_lock, is_postgres, make_engine, redact_url
from projections._event import Event
from projections.blog import BlogProjection
from projections.notifications.projection import NotificationsProjection
from projections.orders import OrdersProjection
from projections.progress.checkpoints import CheckpointStore, Move, TopicPartition
from projections.progress.ledger import EventLedger
from projections.registry import Topics, create_projection, projection_names

__all__ = [
    "ApplyResult",
    "BlogProjection",
    "CheckpointStore",
    "Event",
    "EventLedger",
    "Move",
    "NotificationsProjection",
    "OrdersProjection",
    "Projection",
    "TopicPartition",
    "Topics",
    "create_projection",
    "database_errors",
    "ddl_lock",
    "is_postgres",
    "make_engine",
    "projection_names",
    "redact_url",
]
