"""Command side: the command services, the transactional outbox and its relay, the event
publisher, the Schema Registry framing and the sample-data generator.

``producers`` depends on ``schemas`` only.
"""

from producers.blog_service import BlogService
from producers.command_errors import (
    AggregateNotFound,
    CommandError,
    InvalidCommand,
    VersionConflict,
)
from producers.command_tables import CommandTables, create_command_tables
from producers.order_service import OrderService
from producers.outbox import CommandResult, Outbox, OutboxEvent
from producers.publisher import EventPublisher, PublishError, PublishFailure
from producers.relay import OutboxRelay, RelaySettings, RelayStats, pending_count
from producers.sample import SampleEvent, SampleStream, blog_events, order_events, with_noise

__all__ = [  # noqa: RUF022 - sorted case-insensitively, as the test checks
    "AggregateNotFound",
    "blog_events",
    "BlogService",
    "CommandError",
    "CommandResult",
    "CommandTables",
    "create_command_tables",
    "EventPublisher",
    "InvalidCommand",
    "order_events",
    "OrderService",
    "Outbox",
    "OutboxEvent",
    "OutboxRelay",
    "pending_count",
    "PublishError",
    "PublishFailure",
    "RelaySettings",
    "RelayStats",
    "SampleEvent",
    "SampleStream",
    "VersionConflict",
    "with_noise",
]
