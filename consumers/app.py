"""The composition root: settings in, ready-to-run parts out.

Every part of Projectionist is built here and nowhere else, so the Deployment, the
operator commands, the demo and the tests all get the same wiring:

* :func:`schema_catalog`, :func:`projection_registry`: the schemas and the projections
  this process knows — the shipped ones and the users' (entry points, settings), the one
  list every command, the runner and the ``migrate`` step take projections from;
* :func:`build_runner`: a projection's consumer loop (runner, batch processor, dead
  letters, the e-mail delivery of the ``notifications`` projection);
* :func:`build_read_models`: the query side over each projection's active generation;
* :func:`command_engine`, :func:`command_services`, :func:`build_relay`: the command side.

Kept apart from the loop (``runtime``), the Kafka adapters (``kafka``) and the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from confluent_kafka import Consumer
from sqlalchemy import Engine

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, consumer_config, producer_config
from consumers.kafka.dead_letters import (
    DeadLetterSink,
    KafkaDeadLetterSink,
    check_dead_letter_topics,
    dead_letter_topic,
)
from consumers.runtime.control import GenerationControl
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.runner import ProjectionRunner, RunObserver
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.runtime.wedge import WedgeWatch
from consumers.settings.concerns import (
    DatabaseSettings,
    ExtensionSettings,
    KafkaSettings,
    MailSettings,
    RegistrySettings,
    TopicSettings,
)
from consumers.settings.models import Settings
from projections import (
    CheckpointStore,
    NotificationsProjection,
    Projection,
    TopicPartition,
    Topics,
    create_projection,
    database_errors,
    make_engine,
)
from projections.loading import (
    entry_point_projections,
    entry_point_schema_folders,
    referenced_projections,
    table_projections,
)
from projections.notifications.delivery import MailDelivery, RetryPolicy
from projections.notifications.mail import SmtpConfig, SmtpMailer
from projections.query.read_models import ReadModels
from projections.registry import ProjectionRegistry
from schemas import AvroSerde, SchemaCatalog
from schemas.errors import RetryableError

if TYPE_CHECKING:
    from producers import BlogService, OrderService, OutboxRelay
    from producers.relay import RelayObserver, Stopper

__all__ = [
    "build_processor",
    "build_read_models",
    "build_relay",
    "build_runner",
    "build_serde",
    "command_engine",
    "command_services",
    "dead_letter_topics",
    "group_id",
    "mail_delivery_hook",
    "projection_registry",
    "rebuild_group_id",
    "registry_framing",
    "schema_catalog",
    "smtp_config",
    "topics_from",
]

log = structlog.get_logger(__name__)


def schema_catalog(extensions: ExtensionSettings) -> SchemaCatalog:
    """The shipped schemas and, beside them, the users' folders (entry points, settings)."""
    installed = entry_point_schema_folders() if extensions.entry_points else []
    return SchemaCatalog.load(extra=[*installed, *extensions.schema_folders()])


def projection_registry(
    settings: Settings, *, catalog: SchemaCatalog | None = None
) -> ProjectionRegistry:
    """Every projection this process runs: the shipped ones on the configured topics, then
    the users' from entry points, ``PROJECTIONIST_PROJECTIONS`` and table files."""
    ext = settings.extensions
    extra = entry_point_projections() if ext.entry_points else []
    extra += referenced_projections(ext.projection_references())
    if ext.table_files():
        extra += table_projections(ext.table_files(), catalog or schema_catalog(ext))
    registry = ProjectionRegistry(topics_from(settings.topics), extra)
    check_dead_letter_topics(
        {n: registry.create(n).topics for n in registry.names()}, settings.topics.dlq_suffix
    )
    return registry


def dead_letter_topics(settings: TopicSettings, projection: Projection) -> list[str]:
    """``projection``'s own dead-letter topics, one per topic it consumes."""
    return [dead_letter_topic(t, projection.name, settings.dlq_suffix) for t in projection.topics]


def build_serde(settings: RegistrySettings, catalog: SchemaCatalog | None = None) -> AvroSerde:
    """The decoder: single-object always; Confluent framing too when a registry is set."""
    catalog = catalog or SchemaCatalog.load()
    if not settings.schema_registry_url:
        return AvroSerde(catalog)
    from producers.schema_registry import RegistryFraming, registry_client

    registry = RegistryFraming(registry_client(settings.schema_registry_url), catalog)
    return AvroSerde(catalog, schema_lookup=registry.schema_source)


def topics_from(settings: TopicSettings) -> Topics:
    return Topics(blog=settings.blog_topic, orders=settings.orders_topic)


def group_id(settings: KafkaSettings, projection: Projection) -> str:
    """The live consumer group of a projection, the same for every generation.

    Progress lives in the database, so the group's commits only feed lag tools: after a
    rebuild swaps ``blog_v2`` in, the live consumers keep committing to ``<prefix>.blog``
    and the autoscaler's trigger (KEDA ``consumerGroup``) keeps reading the live lag."""
    return f"{settings.group_prefix}.{projection.name}"


def rebuild_group_id(settings: KafkaSettings, projection: Projection) -> str:
    """The group a rebuild's manually assigned consumer commits to: one per generation,
    apart from the live group (a replay from offset 0 must not look like live lag);
    ``cleanup`` deletes it with the retired generations."""
    return f"{settings.group_prefix}.{projection.slot}"


def build_processor(
    settings: Settings,
    projection_name: str,
    *,
    generation: int | None = None,
    bootstrap_servers: str | None = None,
    serde: AvroSerde | None = None,
    projections: ProjectionRegistry | None = None,
    dead_letters: DeadLetterSink | None = None,
) -> BatchProcessor:
    """The batch processor of one generation: its engine, steps and dead-letter sink
    (what the runner drives, and whose tables ``migrate`` creates: it passes a sink of its
    own, needing no broker)."""
    catalog = None if serde is not None else schema_catalog(settings.extensions)
    registry = projections or projection_registry(settings, catalog=catalog)
    projection = registry.create(projection_name, generation=generation)
    engine = make_engine(settings.database.url())
    stats = RunStats()
    return BatchProcessor(
        engine=engine,
        projection=projection,
        serde=serde or build_serde(settings.registry, catalog),
        checkpoints=CheckpointStore(),
        dead_letters=dead_letters
        or KafkaDeadLetterSink(
            producer_config(settings.kafka, bootstrap_servers=bootstrap_servers),
            suffix=settings.topics.dlq_suffix,
        ),
        stats=stats,
        ledger_retention=timedelta(hours=settings.processing.ledger_retention_hours),
        event_dedup=settings.processing.event_dedup,
        dead_letter_mode=settings.processing.dead_letter_mode,
        applied_log=settings.processing.applied_log,
    )


def build_runner(
    settings: Settings,
    projection_name: str,
    *,
    bootstrap_servers: str | None = None,
    stop: StopSignal | None = None,
    on_batch: Callable[[RunnerSnapshot], None] | None = None,
    observer: RunObserver | None = None,
    client_statistics: Callable[[str], None] | None = None,
    generation: int | None = None,
    assignment: Sequence[TopicPartition] | None = None,
    watch_generation: bool = False,
    live: bool = True,
    batch_max_messages: int | None = None,
    serde: AvroSerde | None = None,
    consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
    projections: ProjectionRegistry | None = None,
) -> ProjectionRunner:
    """A runner for one generation (default: the code's version) of ``projection_name``.

    ``assignment`` (a rebuild) owns those partitions without a group; ``live=False``
    marks every event as a re-application so side effects stay silent;
    ``watch_generation`` follows replays and generation swaps while it runs
    (:class:`GenerationControl`). ``consumer_factory`` builds the Kafka client from its
    configuration: tests and the bench wrap it (a fault, a probe, extra settings).
    ``projections`` is the process's registry (built from ``settings`` when not given).
    """
    processor = build_processor(
        settings,
        projection_name,
        generation=generation,
        bootstrap_servers=bootstrap_servers,
        serde=serde,
        projections=projections,
    )
    projection, engine, stats = processor.projection, processor.engine, processor.stats
    processor.live = live
    conf = consumer_config(
        settings.kafka,
        group_id=(
            group_id(settings.kafka, projection)
            if assignment is None
            else rebuild_group_id(settings.kafka, projection)
        ),
        bootstrap_servers=bootstrap_servers,
    )
    if client_statistics is not None and settings.observability.kafka_statistics_interval_ms > 0:
        conf["statistics.interval.ms"] = settings.observability.kafka_statistics_interval_ms
        conf["stats_cb"] = client_statistics
    loop = settings.loop
    if batch_max_messages is not None:
        loop = loop.model_copy(update={"batch_max_messages": batch_max_messages})
    return ProjectionRunner(
        consumer_conf=conf,
        processor=processor,
        loop=loop,
        cooperative=settings.kafka.assignment_strategy == "cooperative-sticky",
        stop=stop,
        consumer_factory=consumer_factory,
        on_batch=_chain(mail_delivery_hook(settings.mail, projection, engine, stats), on_batch),
        observer=observer,
        assignment=assignment,
        control=GenerationControl(processor, live=live) if watch_generation else None,
        wedge=WedgeWatch(processor, grace_s=settings.observability.readiness_grace_s),
    )


def _chain(
    *hooks: Callable[[RunnerSnapshot], None] | None,
) -> Callable[[RunnerSnapshot], None] | None:
    """Call each hook in turn after every poll (side-effect delivery first)."""
    present = [h for h in hooks if h is not None]
    if len(present) <= 1:
        return present[0] if present else None

    def both(snapshot: RunnerSnapshot) -> None:
        for hook in present:
            hook(snapshot)

    return both


def build_read_models(
    database: DatabaseSettings,
    topics_settings: TopicSettings,
    *,
    read_only: bool,
) -> ReadModels:
    """Reads over the tables of each projection's active generation, resolved per request."""
    topics = topics_from(topics_settings)
    engine = make_engine(database.url(), read_only=read_only)
    names = ("blog", "orders", "notifications")

    def projection_at(name: str, generation: int) -> Projection:
        return create_projection(name, topics=topics, generation=generation)

    defaults = {n: create_projection(n).version for n in names}
    return ReadModels(engine=engine, projection_at=projection_at, defaults=defaults)


# The e-mail delivery of the notifications projection runs after every poll, so recorded
# e-mails go out right after their batch commits, and deferred ones are retried once
# their backoff has passed even when no new events arrive.
_ROUND = 100  # messages per delivery round (one SMTP session)
_DELIVERY_BUDGET_S = 10.0


def smtp_config(settings: MailSettings) -> SmtpConfig:
    password = settings.smtp_password
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        ssl=settings.smtp_ssl,
        username=settings.smtp_username,
        password=password.get_secret_value() if password is not None else None,
        timeout_s=settings.smtp_timeout_s,
        ca_file=settings.smtp_ca_file,
    )


def mail_delivery_hook(
    settings: MailSettings, projection: Projection, engine: Engine, stats: RunStats
) -> Callable[[RunnerSnapshot], None] | None:
    """For the notifications projection, a hook that delivers due e-mails; else None."""
    if not isinstance(projection, NotificationsProjection):
        return None
    projection.mail_from = settings.mail_from
    delivery = MailDelivery(
        engine=engine,
        projection=projection,
        mailer=SmtpMailer(smtp_config(settings)),
        policy=RetryPolicy(
            max_attempts=settings.mail_max_attempts,
            initial_s=settings.mail_retry_initial_s,
            max_s=settings.mail_retry_max_s,
            lease_s=settings.mail_claim_lease_s,
        ),
    )

    def deliver(_snapshot: RunnerSnapshot) -> None:
        # Rounds until nothing is due (so --drain leaves nothing behind), within a time
        # budget so a large backlog never keeps the loop from polling for long.
        until = time.monotonic() + _DELIVERY_BUDGET_S
        while True:
            try:
                report = delivery.deliver_due(limit=_ROUND)
            except RetryableError as exc:  # the database is away: the next poll tries again
                log.warning("mail delivery deferred", error=str(exc))
                return
            for name, n in report.counters().items():
                stats.extra[name] = stats.extra.get(name, 0) + n
            handled = report.sent + report.failed + report.retried
            if handled < _ROUND or report.unavailable or time.monotonic() > until:
                return

    return deliver


def command_engine(settings: Settings) -> Engine:
    from projections import make_engine

    return make_engine(settings.command_database_url())


def command_services(settings: TopicSettings, engine: Engine) -> tuple[BlogService, OrderService]:
    from producers import BlogService, OrderService, Outbox, create_command_tables
    from schemas import AvroSerde, SchemaCatalog

    with database_errors():  # the database away at start: one line, not a traceback
        tables = create_command_tables(engine)
    outbox = Outbox(tables=tables, serde=AvroSerde(SchemaCatalog.load()))
    return (
        BlogService(engine, outbox=outbox, topic=settings.blog_topic),
        OrderService(engine, outbox=outbox, topic=settings.orders_topic),
    )


def registry_framing(settings: RegistrySettings) -> Callable[[bytes], bytes] | None:
    if not settings.schema_registry_url:
        return None
    from producers.schema_registry import RegistryFraming, registry_client
    from schemas import SchemaCatalog

    return RegistryFraming(
        registry_client(settings.schema_registry_url),
        SchemaCatalog.load(),
        auto_register=settings.schema_registry_auto_register,
    )


def build_relay(
    settings: Settings,
    engine: Engine,
    stop: Stopper | None,
    *,
    observer: RelayObserver | None = None,
) -> OutboxRelay:
    from producers import EventPublisher, OutboxRelay, RelaySettings
    from producers.command_tables import CommandTables
    from schemas import AvroSerde, SchemaCatalog

    ensure_topics(
        client_config(settings.kafka),
        [settings.topics.blog_topic, settings.topics.orders_topic],
        partitions=settings.topics.topic_partitions,
    )
    publisher = EventPublisher(
        producer_config(settings.kafka), serde=AvroSerde(SchemaCatalog.load())
    )
    tables = CommandTables()
    with database_errors():
        tables.create(engine)
    return OutboxRelay(
        engine,
        publisher=publisher,
        database_errors=database_errors,
        tables=tables,
        settings=RelaySettings(
            batch_size=settings.commands.relay_batch_size,
            poll_interval_s=settings.commands.relay_poll_interval_s,
            retry_initial_s=settings.loop.retry_initial_s,
            retry_max_s=settings.loop.retry_max_s,
        ),
        framing=registry_framing(settings.registry),
        stop=stop,
        observer=observer,
    )
