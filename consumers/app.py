"""Wiring: settings in, a ready-to-run :class:`ProjectionRunner` out.

Kept apart from the loop (``runner``), the transaction (``batch``) and the CLI, so the
Deployment, ``rebuild``, the demo and the tests all build runners the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from consumers.kafka.config import consumer_config, producer_config
from consumers.kafka.dead_letters import KafkaDeadLetterSink
from consumers.notify import mail_delivery_hook
from consumers.runtime.batch import BatchProcessor
from consumers.runtime.runner import (
    LoopSettings,
    ProjectionRunner,
    RunnerControl,
    RunObserver,
    StopSignal,
)
from consumers.runtime.stats import RunStats
from consumers.settings.models import Settings
from projections import (
    CheckpointStore,
    Projection,
    TopicPartition,
    Topics,
    create_projection,
    make_engine,
)
from schemas import AvroSerde, SchemaCatalog

__all__ = ["build_runner", "build_serde", "group_id", "topics_from"]


def build_serde(settings: Settings) -> AvroSerde:
    """The decoder: single-object always; Confluent framing too when a registry is set."""
    catalog = SchemaCatalog.load()
    if not settings.schema_registry_url:
        return AvroSerde(catalog)
    from producers.schema_registry import RegistryFraming, registry_client

    registry = RegistryFraming(registry_client(settings.schema_registry_url), catalog)
    return AvroSerde(catalog, schema_lookup=registry.schema_source)


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
    observer: RunObserver | None = None,
    client_statistics: Callable[[str], None] | None = None,
    generation: int | None = None,
    assignment: Sequence[TopicPartition] | None = None,
    control: RunnerControl | None = None,
    live: bool = True,
    batch_max_messages: int | None = None,
    serde: AvroSerde | None = None,
) -> ProjectionRunner:
    """A runner for one generation (default: the code's version) of ``projection_name``.

    ``assignment`` (a rebuild) owns those partitions without a group; ``live=False``
    marks every event as a re-application so side effects stay silent.
    """
    projection = create_projection(
        projection_name, topics=topics_from(settings), generation=generation
    )
    engine = make_engine(settings.database_url_value())
    processor = BatchProcessor(
        engine=engine,
        projection=projection,
        serde=serde or build_serde(settings),
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
    conf = consumer_config(
        settings, group_id=group_id(settings, projection), bootstrap_servers=bootstrap_servers
    )
    if client_statistics is not None and settings.kafka_statistics_interval_ms > 0:
        conf["statistics.interval.ms"] = settings.kafka_statistics_interval_ms
        conf["stats_cb"] = client_statistics
    processor.live = live
    return ProjectionRunner(
        consumer_conf=conf,
        processor=processor,
        loop=LoopSettings(
            batch_max_messages=batch_max_messages or settings.batch_max_messages,
            batch_timeout_s=settings.batch_timeout_s,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            cooperative=settings.assignment_strategy == "cooperative-sticky",
        ),
        stop=stop,
        on_batch=_chain(mail_delivery_hook(settings, projection, engine), on_batch),
        observer=observer,
        assignment=assignment,
        control=control,
    )


def _chain(
    *hooks: Callable[[ProjectionRunner], None] | None,
) -> Callable[[ProjectionRunner], None] | None:
    """Call each hook in turn after every poll (side-effect delivery first)."""
    present = [h for h in hooks if h is not None]
    if len(present) <= 1:
        return present[0] if present else None

    def both(runner: ProjectionRunner) -> None:
        for hook in present:
            hook(runner)

    return both
