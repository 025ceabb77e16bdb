"""librdkafka configuration built from :class:`KafkaSettings` (Quix Streams' shape).

Secrets go into the client configuration only here; the dicts returned are never
logged (use :func:`redacted` to show one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consumers.kafka.client_logs import client_logger
from consumers.settings.concerns import KafkaSettings
from schemas.errors import ConfigurationError

__all__ = ["client_config", "consumer_config", "producer_config", "redacted"]

_SECRET_KEYS = ("password", "secret", "sasl.oauthbearer.config", "ssl.key.pem")


def client_config(
    settings: KafkaSettings, *, bootstrap_servers: str | None = None
) -> dict[str, Any]:
    servers = bootstrap_servers or settings.bootstrap_servers
    if not servers:
        raise ConfigurationError(
            "no Kafka to talk to: set PROJECTIONIST_BOOTSTRAP_SERVERS or --bootstrap-servers"
        )
    conf: dict[str, Any] = {
        "bootstrap.servers": servers,
        "security.protocol": settings.security_protocol,
        # A broker closing an idle connection is routine; librdkafka reconnects itself.
        "log.connection.close": False,
        # librdkafka's own lines through the structured logger, rate-limited
        "logger": client_logger(),
    }
    if settings.security_protocol.startswith("SASL"):
        if settings.sasl_mechanism is None:
            raise ConfigurationError(
                f"{settings.security_protocol} needs PROJECTIONIST_SASL_MECHANISM"
            )
        conf["sasl.mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            conf.update(_oauthbearer(settings))
        else:
            if settings.sasl_username is None or settings.sasl_password is None:
                raise ConfigurationError(
                    f"SASL {settings.sasl_mechanism} needs PROJECTIONIST_SASL_USERNAME and "
                    "PROJECTIONIST_SASL_PASSWORD"
                )
            conf["sasl.username"] = settings.sasl_username
            conf["sasl.password"] = settings.sasl_password.get_secret_value()
    for key, value in (
        ("ssl.ca.location", settings.ssl_ca_location),
        ("ssl.certificate.location", settings.ssl_certificate_location),
        ("ssl.key.location", settings.ssl_key_location),
    ):
        if value:
            conf[key] = value
    if settings.ssl_key_password is not None:
        conf["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    return conf


def _oauthbearer(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka's OAUTHBEARER settings, passed through as given."""
    conf: dict[str, Any] = {"sasl.oauthbearer.method": settings.sasl_oauthbearer_method}
    if settings.sasl_oauthbearer_method == "oidc":
        missing = [
            name
            for name, value in (
                ("CLIENT_ID", settings.sasl_oauthbearer_client_id),
                ("CLIENT_SECRET", settings.sasl_oauthbearer_client_secret),
                ("TOKEN_ENDPOINT_URL", settings.sasl_oauthbearer_token_endpoint_url),
            )
            if value is None
        ]
        if missing:
            raise ConfigurationError(
                "OAUTHBEARER oidc needs "
                + ", ".join(f"PROJECTIONIST_SASL_OAUTHBEARER_{m}" for m in missing)
            )
    for key, value in (
        ("sasl.oauthbearer.client.id", settings.sasl_oauthbearer_client_id),
        ("sasl.oauthbearer.token.endpoint.url", settings.sasl_oauthbearer_token_endpoint_url),
        ("sasl.oauthbearer.scope", settings.sasl_oauthbearer_scope),
    ):
        if value:
            conf[key] = value
    for key, secret in (
        ("sasl.oauthbearer.client.secret", settings.sasl_oauthbearer_client_secret),
        ("sasl.oauthbearer.config", settings.sasl_oauthbearer_config),
    ):
        if secret is not None:
            conf[key] = secret.get_secret_value()
    return conf


def consumer_config(
    settings: KafkaSettings, *, group_id: str, bootstrap_servers: str | None = None
) -> dict[str, Any]:
    conf = client_config(settings, bootstrap_servers=bootstrap_servers)
    conf.update(
        {
            "group.id": group_id,
            # Progress lives in the read-model database; Kafka commits follow each DB
            # commit explicitly and only feed lag tools.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Every partition is assigned at an explicit offset (checkpoint + 1, or the
            # beginning). A fetch that falls outside the log therefore means history was
            # lost: surface it as an error instead of silently jumping anywhere.
            "auto.offset.reset": "error",
            "partition.assignment.strategy": settings.assignment_strategy,
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": settings.heartbeat_interval_ms,
            "max.poll.interval.ms": settings.max_poll_interval_ms,
            "queued.max.messages.kbytes": settings.queued_max_kbytes,
            # Once that prefetch is full, librdkafka postpones the partition's next fetch
            # by this much (default 1 s): with a bounded queue and a loop that drains it
            # in well under a second, the default leaves the loop idle about half the
            # time (bench: 37k vs 66k decoded events/s). 10 ms keeps fetching ahead.
            "fetch.queue.backoff.ms": 10,
            "fetch.max.bytes": 16 * 1024 * 1024,
            # A fetch may wait this long for data: at moderate rates it is latency
            # (the embedded broker holds fetches for the full wait). Costs an idle
            # fetch per 10 ms per broker; with data waiting, fetches return at once.
            "fetch.wait.max.ms": 10,
            "enable.partition.eof": False,
        }
    )
    if settings.group_instance_id:
        conf["group.instance.id"] = settings.group_instance_id
    return conf


def producer_config(
    settings: KafkaSettings,
    *,
    bootstrap_servers: str | None = None,
    transactional_id: str | None = None,
) -> dict[str, Any]:
    conf = client_config(settings, bootstrap_servers=bootstrap_servers)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.timeout.ms": 120_000,
        }
    )
    if transactional_id:
        conf["transactional.id"] = transactional_id
    return conf


def redacted(conf: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a client configuration that is safe to print."""
    return {k: ("**********" if any(s in k for s in _SECRET_KEYS) else v) for k, v in conf.items()}
