"""Wiring: settings in, a ready-to-run :class:`ProjectionRunner` out.

Kept apart from the loop (``runner``), the transaction (``batch``) and the CLI, so the
Deployment, ``rebuild``, the demo and the tests all build runners the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from consumers._kafka import consumer_config, producer_config
from consumers._settings import Settings
from consumers.batch import BatchProcessor
from consumers.deadletter import KafkaDeadLetterSink
from consumers.runner import LoopSettings, ProjectionRunner, StopSignal
from consumers.stats import RunStats
from projections import CheckpointStore, Projection, Topics, create_projection, make_engine
from schemas import AvroSerde, SchemaCatalog

__all__ = ["build_runner", "group_id", "topics_from"]


def topics_from(settings: Settings) -> Topics:
    return Topics(blog=settings.blog_topic, orders=settings.orders_topic)


def group_id(settings: Settings, projection: Projection) -> str:
    """One consumer group per projection version: v2 rebuilds beside v1."""
    return f"{settings.group_prefix}.{projection.slot}"


def build_runner(
    settings: Settings,
    projection_name: str,
    *,
    bootstrap_servers: str | None = None,
    stop: StopSignal | None = None,
    on_batch: Callable[[ProjectionRunner], None] | None = None,
) -> ProjectionRunner:
    projection = create_projection(projection_name, topics=topics_from(settings))
    engine = make_engine(settings.database_url_value())
    processor = BatchProcessor(
        engine=engine,
        projection=projection,
        serde=AvroSerde(SchemaCatalog.load()),
        checkpoints=CheckpointStore(),
        dead_letters=KafkaDeadLetterSink(
            producer_config(settings, bootstrap_servers=bootstrap_servers),
            suffix=settings.dlq_suffix,
        ),
        stats=RunStats(),
        ledger_retention=timedelta(hours=settings.ledger_retention_hours),
        event_dedup=settings.event_dedup,
        dead_letter_mode=settings.dead_letter_mode,
        applied_log=settings.applied_log,
    )
    return ProjectionRunner(
        consumer_conf=consumer_config(
            settings, group_id=group_id(settings, projection), bootstrap_servers=bootstrap_servers
        ),
        processor=processor,
        loop=LoopSettings(
            batch_max_messages=settings.batch_max_messages,
            batch_timeout_s=settings.batch_timeout_s,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            cooperative=settings.assignment_strategy == "cooperative-sticky",
        ),
        stop=stop,
        on_batch=on_batch,
    )
