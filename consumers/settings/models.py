"""Typed, frozen settings: environment variables with a ``PROJECTIONIST_`` prefix.

Built once in ``main()`` (command-line flags override the environment) and passed
down; nothing reads the environment anywhere else. Secrets are ``SecretStr`` so they
never appear in ``repr``, logs, ``status`` output or error messages.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.settings.environment import secret_file_values
from schemas.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]

AssignmentStrategy = Literal["range", "roundrobin", "cooperative-sticky"]
DeadLetterMode = Literal["skip", "park-key"]


class Settings(BaseSettings):
    """Everything a Projectionist process can be told. See ``projectionist --help``."""

    model_config = SettingsConfigDict(
        env_prefix="PROJECTIONIST_", frozen=True, extra="forbid", env_nested_delimiter="__"
    )

    # --- Kafka -----------------------------------------------------------------------
    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers; unset starts the embedded broker (demo only)",
    )
    blog_topic: str = "blog.posts"
    orders_topic: str = "orders.orders"
    topic_partitions: int = Field(default=4, ge=1, description="partitions for created topics")
    group_prefix: str = "projectionist"
    group_instance_id: str | None = Field(
        default=None, description="static membership id (e.g. the pod name)"
    )
    assignment_strategy: AssignmentStrategy = "cooperative-sticky"
    session_timeout_ms: int = Field(default=45_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
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

    # --- the read-model database -------------------------------------------------------
    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///projectionist.db"),
        description="sqlite:///path.db or postgresql://user:pass@host/db",
    )

    # --- the command side: services, outbox relay, Schema Registry ------------------------
    command_database_url: SecretStr | None = Field(
        default=None,
        description="database of the command services and their outbox (default: database_url)",
    )
    commands_address: str = Field(
        default="127.0.0.1:8081", description="host:port of the command HTTP API"
    )
    relay_batch_size: int = Field(default=500, ge=1, le=100_000)
    relay_poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    relay_pause_after_ack_s: float = Field(
        default=0.0,
        ge=0,
        description="fault injection for crash tests: pause after the ack, before the mark",
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent Schema Registry URL; set: producers write its wire format",
    )
    schema_registry_auto_register: bool = True

    # --- the consumer loop ---------------------------------------------------------------
    batch_max_messages: int = Field(default=5_000, ge=1, le=1_000_000)
    # consume() waits this long for a batch to fill: at moderate rates it is added to
    # every event's produce→queryable latency, so keep it well under the p99 budget.
    batch_timeout_s: float = Field(default=0.05, gt=0, le=60)
    # 8 MiB is ~30k blog events: several batches ahead, so fetching never starves the
    # loop, while a 1M-event backlog stays under the 250 MB RSS budget (bench).
    queued_max_kbytes: int = Field(
        default=8_192, ge=1_024, description="bounded prefetch per consumer (KiB)"
    )
    retry_initial_s: float = Field(default=0.2, gt=0)
    retry_max_s: float = Field(default=15.0, gt=0)
    ledger_retention_hours: float = Field(
        default=168, gt=0, description="how long event ids are kept for dedup"
    )
    dlq_suffix: str = ".dlq"
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
    shutdown_grace_s: float = Field(default=25.0, gt=0)

    # --- observability ---------------------------------------------------------------
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

    # --- the query API (projectionist serve) -----------------------------------------------
    api_address: str = Field(default="127.0.0.1:8080", description="host:port the query API binds")
    api_wait_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="longest read-your-writes wait per request"
    )
    api_max_limit: int = Field(default=500, ge=1, le=10_000, description="cap on ?limit=")
    api_read_only: bool = Field(default=True, description="serve through a read-only session")

    # --- notification e-mails (SMTP) ------------------------------------------------------
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

    # --- tag-cloud reconciliation -----------------------------------------------------------
    reconcile_interval_s: float | None = Field(
        default=None, gt=0, description="run the tag-cloud reconciliation every N seconds"
    )

    @field_validator(
        "bootstrap_servers",
        "group_instance_id",
        "metrics_address",
        "smtp_username",
        "smtp_ca_file",
        "reconcile_interval_s",
        "schema_registry_url",
        "command_database_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65_536:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> Settings:
        if self.smtp_starttls and self.smtp_ssl:
            raise ValueError("smtp_starttls and smtp_ssl exclude each other: pick one")
        return self

    def database_url_value(self) -> str:
        return self.database_url.get_secret_value()

    def command_database_url_value(self) -> str:
        url = self.command_database_url or self.database_url
        return url.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Environment (and ``*_FILE`` secrets) first, then non-None ``overrides`` on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    secret_fields = [
        name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
    ]
    given = {**secret_file_values(os.environ, secret_fields, given=given), **given}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
