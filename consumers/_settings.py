"""Typed, frozen settings: environment variables with a ``PROJECTIONIST_`` prefix.

Built once in ``main()`` (command-line flags override the environment) and passed
down; nothing reads the environment anywhere else. Secrets are ``SecretStr`` so they
never appear in ``repr``, logs, ``status`` output or error messages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    # --- the read-model database -------------------------------------------------------
    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///projectionist.db"),
        description="sqlite:///path.db or postgresql://user:pass@host/db",
    )

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
    dead_letter_mode: DeadLetterMode = "skip"
    shutdown_grace_s: float = Field(default=25.0, gt=0)

    # --- observability ---------------------------------------------------------------
    metrics_address: str | None = Field(
        default=None, description="host:port for /metrics, /healthz, /readyz"
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("bootstrap_servers", "group_instance_id", "metrics_address", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    def database_url_value(self) -> str:
        return self.database_url.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Environment first, then non-None ``overrides`` (command-line flags) on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
