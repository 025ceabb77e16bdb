"""The composition root: settings in, ready-to-run parts out.

Every part of Projectionist is built here and nowhere else, so the Deployment, the
operator commands, the demo and the tests all get the same wiring:

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
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Engine

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, consumer_config, producer_config
from consumers.kafka.dead_letters import KafkaDeadLetterSink
from consumers.runtime.batch import BatchProcessor
from consumers.runtime.runner import (
    LoopSettings,
    ProjectionRunner,
    RunnerControl,
    RunObserver,
)
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.settings.models import Settings
from projections import (
    BlogProjection,
    CheckpointStore,
    NotificationsProjection,
    OrdersProjection,
    Projection,
    TopicPartition,
    Topics,
    create_projection,
    database_errors,
    make_engine,
)
from projections.generations.versions import active_generation
from projections.notifications.delivery import MailDelivery, RetryPolicy
from projections.notifications.mail import SmtpConfig, SmtpMailer
from projections.query.read_models import ReadModels
from schemas import AvroSerde, SchemaCatalog
from schemas.errors import DatabaseUnavailable, RetryableError

if TYPE_CHECKING:
    from producers import BlogService, OrderService, OutboxRelay
    from producers.relay import Stopper

__all__ = [
    "build_read_models",
    "build_relay",
    "build_runner",
    "build_serde",
    "command_engine",
    "command_services",
    "group_id",
    "mail_delivery_hook",
    "registry_framing",
    "smtp_config",
    "topics_from",
]

log = structlog.get_logger(__name__)


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


def build_read_models(settings: Settings, *, read_only: bool) -> ReadModels:
    """Reads over the tables of each projection's active generation (after rebuilds)."""
    topics = topics_from(settings)
    engine = make_engine(settings.database_url_value(), read_only=read_only)
    generations = {n: create_projection(n).version for n in ("blog", "orders", "notifications")}
    try:
        with database_errors(), engine.connect() as conn:
            generations = {n: active_generation(conn, n, v) for n, v in generations.items()}
    except DatabaseUnavailable:
        pass  # serve anyway: every request answers 503 until the database is back
    blog = create_projection("blog", topics=topics, generation=generations["blog"])
    orders = create_projection("orders", topics=topics, generation=generations["orders"])
    notifications = create_projection(
        "notifications", topics=topics, generation=generations["notifications"]
    )
    assert isinstance(blog, BlogProjection)
    assert isinstance(orders, OrdersProjection)
    assert isinstance(notifications, NotificationsProjection)
    return ReadModels(engine=engine, blog=blog, orders=orders, notifications=notifications)


_ROUND = 100  # messages per delivery round (one SMTP session)
_DELIVERY_BUDGET_S = 10.0


def smtp_config(settings: Settings) -> SmtpConfig:
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
    settings: Settings, projection: Projection, engine: Engine
) -> Callable[[ProjectionRunner], None] | None:
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

    def deliver(runner: ProjectionRunner) -> None:
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
                runner.stats.extra[name] = runner.stats.extra.get(name, 0) + n
            handled = report.sent + report.failed + report.retried
            if handled < _ROUND or report.unavailable or time.monotonic() > until:
                return

    return deliver


def command_engine(settings: Settings) -> Engine:
    from projections import make_engine

    return make_engine(settings.command_database_url_value())


def command_services(settings: Settings, engine: Engine) -> tuple[BlogService, OrderService]:
    from producers import BlogService, OrderService, Outbox, create_command_tables
    from schemas import AvroSerde, SchemaCatalog

    outbox = Outbox(tables=create_command_tables(engine), serde=AvroSerde(SchemaCatalog.load()))
    return (
        BlogService(engine, outbox=outbox, topic=settings.blog_topic),
        OrderService(engine, outbox=outbox, topic=settings.orders_topic),
    )


def registry_framing(settings: Settings) -> Callable[[bytes], bytes] | None:
    if not settings.schema_registry_url:
        return None
    from producers.schema_registry import RegistryFraming, registry_client
    from schemas import SchemaCatalog

    return RegistryFraming(
        registry_client(settings.schema_registry_url),
        SchemaCatalog.load(),
        auto_register=settings.schema_registry_auto_register,
    )


def build_relay(settings: Settings, engine: Engine, stop: Stopper | None) -> OutboxRelay:
    from producers import EventPublisher, OutboxRelay, RelaySettings
    from producers.command_tables import CommandTables
    from schemas import AvroSerde, SchemaCatalog

    ensure_topics(
        client_config(settings),
        [settings.blog_topic, settings.orders_topic],
        partitions=settings.topic_partitions,
    )
    publisher = EventPublisher(producer_config(settings), serde=AvroSerde(SchemaCatalog.load()))
    tables = CommandTables()
    tables.create(engine)
    return OutboxRelay(
        engine,
        publisher=publisher,
        tables=tables,
        settings=RelaySettings(
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            pause_after_ack_s=settings.relay_pause_after_ack_s,
        ),
        framing=registry_framing(settings),
        stop=stop,
    )
