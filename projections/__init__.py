"""The read models: tables, one module per projection, checkpoints, and the database edge.

``projections`` depends on ``schemas`` only; it never imports ``confluent_kafka``.
"""

from projections._base import ApplyResult, Projection
from projections._db import database_errors, is_postgres, make_engine, redact_url
from projections._event import Event
from projections.blog import BlogProjection
from projections.checkpoints import CheckpointStore, Move, TopicPartition
from projections.registry import Topics, create_projection, projection_names

__all__ = [  # noqa: RUF022 - sorted case-insensitively, as the test checks
    "ApplyResult",
    "BlogProjection",
    "CheckpointStore",
    "create_projection",
    "database_errors",
    "Event",
    "is_postgres",
    "make_engine",
    "Move",
    "Projection",
    "projection_names",
    "redact_url",
    "TopicPartition",
    "Topics",
]
