"""One settings model per concern (:class:`KafkaSettings`, :class:`DatabaseSettings`, …),
each handed only to the code that needs it; :mod:`consumers.settings.models` gathers
them into :class:`~consumers.settings.models.Settings`. Every field name is its
variable's name without the ``PROJECTIONIST_`` prefix."""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from schemas import check_email_address

__all__ = [
    "ApiSettings",
    "AssignmentStrategy",
    "CommandSettings",
    "DatabaseSettings",
    "DeadLetterMode",
    "ExtensionSettings",
    "KafkaSettings",
    "LoopSettings",
    "MailSettings",
    "ObservabilitySettings",
    "ProcessingSettings",
    "ReconcileSettings",
    "RegistrySettings",
    "TopicSettings",
]

AssignmentStrategy = Literal["range", "roundrobin", "cooperative-sticky"]
DeadLetterMode = Literal["skip", "park-key"]


def _empty_is_unset(value: object) -> object:
    return None if value == "" else value


def _host_port(value: str | None) -> str | None:
    """``host:port`` (port 0: any free port, as tests bind)."""
    if value is None:
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65_536:
        raise ValueError(f"{value[:80]!r} is not host:port")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


#: no setting needs more; larger numbers overflow timedelta, sleep() or librdkafka's ints
_MAX_FLOAT = 1e9
_MAX_INT = 2**31 - 1


class _Concern(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: object) -> object:
        if isinstance(value, float) and abs(value) > _MAX_FLOAT:
            raise ValueError(f"at most {_MAX_FLOAT:g}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
            raise ValueError(f"at most {_MAX_INT}")
        return value


class KafkaSettings(_Concern):
    """The Kafka client: where the brokers are, the consumer group, security."""

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers; unset starts the embedded broker (demo only)",
    )
    group_prefix: str = "projectionist"
    group_instance_id: str | None = Field(
        default=None, description="static membership id (e.g. the pod name)"
    )
    assignment_strategy: AssignmentStrategy = "cooperative-sticky"
    session_timeout_ms: int = Field(default=45_000, ge=1_000)
    broker_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="how long a one-off command waits for the broker to answer before it fails",
    )
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    # 8 MiB is ~30k blog events: several batches ahead, so fetching never starves the
    # loop, while a 1M-event backlog stays under the 250 MB RSS budget (bench).
    queued_max_kbytes: int = Field(
        default=8_192, ge=1_024, description="bounded prefetch per consumer (KiB)"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    # OAUTHBEARER is passed through to librdkafka: "oidc" fetches tokens from the
    # token endpoint with client credentials; "default" takes sasl.oauthbearer.config.
    sasl_oauthbearer_method: Literal["default", "oidc"] = "default"
    sasl_oauthbearer_client_id: str | None = None
    sasl_oauthbearer_client_secret: SecretStr | None = None
    sasl_oauthbearer_token_endpoint_url: str | None = None
    sasl_oauthbearer_scope: str | None = None
    sasl_oauthbearer_config: SecretStr | None = None

    _unset = field_validator("bootstrap_servers", "group_instance_id", mode="before")(
        _empty_is_unset
    )
    _named = field_validator("group_prefix")(_not_blank)


class TopicSettings(_Concern):
    """Topic names: one per aggregate, plus each topic's dead-letter topic."""

    blog_topic: str = "blog.posts"
    orders_topic: str = "orders.orders"
    topic_partitions: int = Field(default=4, ge=1, description="partitions for created topics")
    dlq_suffix: str = Field(
        default=".dlq", description="dead-letter topics are <topic>.<projection><suffix>"
    )

    @field_validator("dlq_suffix")
    @classmethod
    def _dlq_suffix(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty: dead letters must never go back to a source topic")
        return value

    @field_validator("blog_topic", "orders_topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        # Kafka's own rule for topic names (and "." / ".." are not allowed)
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) or value in (".", ".."):
            raise ValueError(f"{value[:60]!r} is not a topic name (1-249 of A-Z a-z 0-9 . _ -)")
        return value

    def names(self) -> list[str]:
        """The event topics (not their dead-letter topics)."""
        return [self.blog_topic, self.orders_topic]


class DatabaseSettings(_Concern):
    """The read-model database."""

    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///projectionist.db"),
        description="sqlite:///path.db or postgresql://user:pass@host/db",
    )

    def url(self) -> str:
        return self.database_url.get_secret_value()


class LoopSettings(_Concern):
    """The consumer loop: batch size and wait, retry backoff, shutdown grace."""

    batch_max_messages: int = Field(default=5_000, ge=1, le=1_000_000)
    # consume() waits this long for a batch to fill: at moderate rates it is added to
    # every event's produce→queryable latency, so keep it well under the p99 budget.
    # With a backlog batches fill at once and it costs nothing (bench: 2,000 events/s,
    # p99 127 ms at 50 ms, 74 ms at 10 ms, with fetch.wait.max.ms 50 → 10).
    batch_timeout_s: float = Field(default=0.01, gt=0, le=60)
    retry_initial_s: float = Field(default=0.2, gt=0)
    retry_max_s: float = Field(default=15.0, gt=0)
    shutdown_grace_s: float = Field(default=25.0, gt=0)


class ProcessingSettings(_Concern):
    """What a batch's transaction does besides apply: dedup, dead-letter mode, audit."""

    ledger_retention_hours: float = Field(
        default=168, gt=0, le=876_000, description="how long event ids are kept for dedup"
    )
    dead_letter_mode: DeadLetterMode = Field(
        default="skip",
        description="skip: dead-letter and go on; park-key: also park later events of the key",
    )
    event_dedup: bool = Field(
        default=False,
        description="dedup by event id even when the projection's writes are idempotent",
    )
    applied_log: bool = Field(
        default=False,
        description="audit: log every offset a batch passes in applied_event_log (same tx)",
    )


class ObservabilitySettings(_Concern):
    """Metrics and probes endpoints, their thresholds, client statistics, logs."""

    metrics_address: str | None = Field(
        default=None, description="host:port for /metrics, /healthz, /readyz"
    )
    stall_timeout_s: float = Field(
        default=120.0, gt=0, description="/healthz fails after this long without loop progress"
    )
    readiness_grace_s: float = Field(
        default=30.0, ge=0, description="/readyz tolerates no assignment this long (rebalances)"
    )
    kafka_statistics_interval_ms: int = Field(
        default=15_000, ge=0, description="librdkafka statistics for client gauges (0: off)"
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    _unset = field_validator("metrics_address", mode="before")(_empty_is_unset)


class ApiSettings(_Concern):
    """The query API (``projectionist serve``)."""

    api_address: str = Field(default="127.0.0.1:8080", description="host:port the query API binds")
    api_wait_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="longest read-your-writes wait per request"
    )
    api_max_limit: int = Field(default=500, ge=1, le=10_000, description="cap on ?limit=")
    api_read_only: bool = Field(default=True, description="serve through a read-only session")
    # Slow clients (both HTTP APIs): a connection may not hold a socket by sending slowly.
    http_header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="longest wait for a request's headers"
    )
    http_body_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="longest wait for each piece of a request body"
    )

    _address = field_validator("api_address")(_host_port)


class MailSettings(_Concern):
    """Notification e-mails: the SMTP server, the sender, retries and leases."""

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65_535)
    smtp_starttls: bool = Field(default=False, description="upgrade with STARTTLS after connect")
    smtp_ssl: bool = Field(default=False, description="implicit TLS (SMTPS, usually port 465)")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    smtp_ca_file: str | None = Field(
        default=None, description="PEM CA bundle to trust for SMTP TLS (default: system store)"
    )
    mail_from: str = Field(default="Projectionist <orders@projectionist.invalid>")
    mail_max_attempts: int = Field(
        default=8, ge=1, description="transient SMTP failures before a message is marked failed"
    )
    mail_retry_initial_s: float = Field(default=5.0, gt=0)
    mail_retry_max_s: float = Field(default=900.0, gt=0)
    mail_claim_lease_s: float = Field(
        default=120.0,
        gt=0,
        description="a crashed sender's claim on a message expires after this; then it is re-sent",
    )

    _unset = field_validator("smtp_username", "smtp_ca_file", mode="before")(_empty_is_unset)
    _named = field_validator("smtp_host")(_not_blank)

    @field_validator("mail_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        _name, address = parseaddr(value)
        problem = check_email_address(address) if address else "has no address"
        if problem is not None or "," in value:
            raise ValueError(
                f"{value[:80]!r} is not one sender like 'Shop <shop@example.com>' "
                "or shop@example.com"
            )
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> MailSettings:
        if self.smtp_starttls and self.smtp_ssl:
            raise ValueError("smtp_starttls and smtp_ssl exclude each other: pick one")
        return self


class CommandSettings(_Concern):
    """The command side: its database and HTTP API, the outbox relay."""

    command_database_url: SecretStr | None = Field(
        default=None,
        description="database of the command services and their outbox (default: database_url)",
    )
    commands_address: str = Field(
        default="127.0.0.1:8081", description="host:port of the command HTTP API"
    )
    relay_batch_size: int = Field(default=500, ge=1, le=100_000)
    relay_poll_interval_s: float = Field(default=0.2, gt=0, le=60)

    _unset = field_validator("command_database_url", mode="before")(_empty_is_unset)
    _address = field_validator("commands_address")(_host_port)


class RegistrySettings(_Concern):
    """The Confluent Schema Registry, when one is used (producers and consumers)."""

    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent Schema Registry URL; set: producers write its wire format",
    )
    schema_registry_auto_register: bool = True

    _unset = field_validator("schema_registry_url", mode="before")(_empty_is_unset)

    @field_validator("schema_registry_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"{value[:80]!r} is not an http:// or https:// URL")
        return value


class ReconcileSettings(_Concern):
    """Tag-cloud reconciliation."""

    reconcile_interval_s: float | None = Field(
        default=None, gt=0, description="run the tag-cloud reconciliation every N seconds"
    )

    _unset = field_validator("reconcile_interval_s", mode="before")(_empty_is_unset)


def _listed(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class ExtensionSettings(_Concern):
    """Users' own projections and schemas, loaded from outside the package."""

    projections: str = Field(
        default="",
        description="your code projections: module:attr[,module:attr] (Projection classes "
        "or factories)",
    )
    table_projections: str = Field(
        default="", description="declarative table projections: TOML file[,file]"
    )
    schema_paths: str = Field(
        default="",
        description="folders of your own .avsc files (<namespace>/<Name>.v<N>.avsc), "
        "comma-separated",
    )
    entry_points: bool = Field(
        default=True,
        description="load projections and schemas that installed packages declare "
        "(entry points projectionist.projections / projectionist.schemas)",
    )

    def projection_references(self) -> list[str]:
        return _listed(self.projections)

    def table_files(self) -> list[Path]:
        return [Path(p) for p in _listed(self.table_projections)]

    def schema_folders(self) -> list[Path]:
        return [Path(p) for p in _listed(self.schema_paths)]


#: concern (attribute of :class:`Settings`) → its model
