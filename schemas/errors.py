"""The one exception tree of Projectionist: every error class of the product, drawn here.

``schemas`` is the package every other package depends on, so the root and the shared
branches live here; a branch that belongs to one layer is defined in that layer
(module in brackets) and drawn here all the same::

    ProjectionistError
    ├── RetryableError            transient: pause, back off, retry the same work
    │   ├── DatabaseUnavailable   connection refused/lost, deadlock, serialization failure
    │   ├── BrokerUnavailable     transport errors, timeouts talking to Kafka
    │   │   └── PublishError      events the broker did not acknowledge  [producers.publisher]
    │   └── MailUnavailable       SMTP server away, TLS/login failed, a 4xx answer
    │                                                      [projections.notifications.mail]
    ├── PoisonError               this message can never be applied: dead-letter it
    │   ├── UndecodableError      bytes that are not a known framing / not valid Avro
    │   ├── UnknownSchemaError    a fingerprint or schema id no catalog knows
    │   ├── InvalidEventError     decodes, but breaks a domain rule (negative quantity …)
    │   ├── RejectedByDatabase    the database refuses a row for good (width, NUL, overflow)
    │   └── KeyParked             an earlier event of the key was dead-lettered (park-key)
    │                                                      [consumers.runtime.poison]
    ├── FencedError               lost the compare-and-set on a checkpoint (zombie writer)
    ├── DataLossError             checkpoint outside the partition's watermarks
    │   └── HistoryIncomplete     a rebuild would miss history retention deleted
    │                                                      [consumers.operations.rebuild]
    ├── ConfigurationError        a user mistake in settings or command-line input (exit 2)
    │   └── ReplayRefused         the projection's writes are not idempotent under replay
    │                                                      [consumers.operations.replay]
    ├── WorkerFailed              a rebuild's worker process died or failed unexpectedly
    │                                          [consumers.operations.rebuild_workers]
    ├── MailRejected              a 5xx answer: this message or recipient, for good
    │                                                      [projections.notifications.mail]
    └── CommandError              a command was refused; nothing was written
        ├── InvalidCommand        input breaks a rule (HTTP 422)  [producers.command_errors]
        ├── AggregateNotFound     no such post or order, or deleted (HTTP 404)
        └── VersionConflict       the expected version is not the current one (HTTP 409)

Outside the tree, by design — HTTP answers of the query API, never raised past it:

    ApiError (Exception)          an answer other than 200, with a code  [projections.query.api]
    BadCursor (ValueError)        a pagination cursor this API did not issue
                                                           [projections.query.read_models]

Driver errors (psycopg, sqlite3, librdkafka, smtplib) are translated into this tree at
the edge where they are raised (``projections.database_errors`` for the database, also
handed to the outbox relay; the Kafka adapters; the mailer); nothing above that edge
catches driver exceptions. ``tests/unit/test_exported_members.py`` checks that every
exception class of the product is drawn here.
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
    "RejectedByDatabase",
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


class RejectedByDatabase(PoisonError):
    """The database refuses a value of this event for good (a data or constraint error).

    Validation keeps most such values out; this is the net under it, translated at the
    database edge and isolated per event by the batch's bisection like any other poison.
    """


class FencedError(ProjectionistError):
    """Another consumer advanced this checkpoint first; our batch must not commit."""


class DataLossError(ProjectionistError):
    """The stored checkpoint cannot be reconciled with what the topic still holds."""


class ConfigurationError(ProjectionistError):
    """Bad settings or command-line input; the message says how to fix it."""
