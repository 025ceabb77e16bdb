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

__all__ = [
    "AggregateNotFound",
    "BlogService",
    "CommandError",
    "CommandResult",
    "CommandTables",
    "EventPublisher",
    "InvalidCommand",
    "OrderService",
    "Outbox",
    "OutboxEvent",
    "OutboxRelay",
    "PublishError",
    "PublishFailure",
    "RelaySettings",
    "RelayStats",
    "SampleEvent",
    "SampleStream",
    "VersionConflict",
    "blog_events",
    "create_command_tables",
    "order_events",
    "pending_count",
    "with_noise",
]
