"""The one exception tree of Projectionist.

``schemas`` is the package every other package depends on, so the tree lives here::

    ProjectionistError
    ├── RetryableError            transient: pause, back off, retry the same batch
    │   ├── DatabaseUnavailable   connection refused/lost, deadlock, serialization failure
    │   └── BrokerUnavailable     transport errors, timeouts talking to Kafka
    ├── PoisonError               this message can never be applied: dead-letter it
    │   ├── UndecodableError      bytes that are not a known framing / not valid Avro
    │   ├── UnknownSchemaError    a fingerprint or schema id no catalog knows
    │   └── InvalidEventError     decodes, but breaks a domain rule (negative quantity …)
    ├── FencedError               lost the compare-and-set on a checkpoint (zombie writer)
    ├── DataLossError             checkpoint outside the partition's watermarks
    └── ConfigurationError        a user mistake in settings or command-line input

Driver errors (psycopg, sqlite3, librdkafka) are translated into this tree at the
edge where they are raised; nothing above that edge catches driver exceptions.
"""

from __future__ import annotations

__all__ = [
    "BrokerUnavailable",
    "ConfigurationError",
    "DataLossError",
    "DatabaseUnavailable",
    "FencedError",
    "InvalidEventError",
    "PoisonError",
    "ProjectionistError",
    "RetryableError",
    "UndecodableError",
    "UnknownSchemaError",
]


class ProjectionistError(Exception):
    """Root of every error Projectionist raises on purpose."""


class RetryableError(ProjectionistError):
    """A transient failure: the same work may succeed later."""


class DatabaseUnavailable(RetryableError):
    """The read-model database is unreachable, or the transaction lost a lock race."""


class BrokerUnavailable(RetryableError):
    """The Kafka broker could not be reached or timed out."""


class PoisonError(ProjectionistError):
    """A message that will never succeed; it belongs in the dead-letter topic."""


class UndecodableError(PoisonError):
    """The bytes are not a framing we know, or the Avro body does not decode."""


class UnknownSchemaError(PoisonError):
    """The message names a schema (fingerprint or registry id) that no catalog holds."""


class InvalidEventError(PoisonError):
    """The event decodes but breaks a rule of its domain."""


class FencedError(ProjectionistError):
    """Another consumer advanced this checkpoint first; our batch must not commit."""


class DataLossError(ProjectionistError):
    """The stored checkpoint cannot be reconciled with what the topic still holds."""


class ConfigurationError(ProjectionistError):
    """Bad settings or command-line input; the message says how to fix it."""
