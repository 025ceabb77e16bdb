"""Misconfigurations through the shipped command: one line, the right exit code, no traceback.

Each case runs ``projectionist`` as a process with one mistake in its environment. A
configuration mistake exits 2 with one ``error:`` line naming the setting; a database
that is away at start exits 1 with one line. Nothing prints a traceback or a secret.
librdkafka's own log lines (``%3|…``) are not ours to shape and are left out of the count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from producers import order_events
from tests.support import PG_BASE_URL, TEST_ENV, run_cli
from tests.support.broker import publish
from tests.support.processes import assert_one_error_line
from tests.support.servers import smtp_server

SECRET = "s3cret-pw-never-printed"
DOWN_PG = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"

# label, command, environment (on top of a working one), exit code, words in the error line
CASES: list[tuple[str, list[str], dict[str, str], int, str]] = [
    (
        "psycopg2 driver",
        ["status"],
        {"PROJECTIONIST_DATABASE_URL": "postgresql+psycopg2://u@h/db"},
        2,
        "psycopg2",
    ),
    (
        "asyncpg driver",
        ["status"],
        {"PROJECTIONIST_DATABASE_URL": "postgresql+asyncpg://u@h/db"},
        2,
        "asyncpg",
    ),
    (
        "aiosqlite driver",
        ["status"],
        {"PROJECTIONIST_DATABASE_URL": "sqlite+aiosqlite:///x.db"},
        2,
        "aiosqlite",
    ),
    (
        "unknown URL option",
        ["status"],
        {"PROJECTIONIST_DATABASE_URL": PG_BASE_URL + "/test?nosuchoption=1"},
        2,
        "nosuchoption",
    ),
    ("not a URL", ["status"], {"PROJECTIONIST_DATABASE_URL": "::::"}, 2, "not a URL"),
    (
        "unsupported database",
        ["status"],
        {"PROJECTIONIST_DATABASE_URL": "mysql://u@h/db"},
        2,
        "mysql",
    ),
    (
        "database away: status",
        ["status"],
        {"PROJECTIONIST_DATABASE_URL": DOWN_PG},
        1,
        "DatabaseUnavailable",
    ),
    (
        "database away: serve-commands",
        ["serve-commands"],
        {"PROJECTIONIST_COMMAND_DATABASE_URL": DOWN_PG},
        1,
        "DatabaseUnavailable",
    ),
    (
        "database away: relay --drain",
        ["relay", "--drain"],  # the service (no --drain) waits: tests/faults/test_startup_outage
        {"PROJECTIONIST_COMMAND_DATABASE_URL": DOWN_PG},
        1,
        "DatabaseUnavailable",
    ),
    (
        "database away: produce",
        ["produce", "--count", "3"],
        {"PROJECTIONIST_COMMAND_DATABASE_URL": DOWN_PG},
        1,
        "DatabaseUnavailable",
    ),
    (
        "misspelled variable",
        ["status"],
        {"PROJECTIONIST_DATABASE_URI": "sqlite:///x.db"},
        2,
        "PROJECTIONIST_DATABASE_URL",
    ),
    (
        "singular bootstrap",
        ["status"],
        {"PROJECTIONIST_BOOTSTRAP_SERVER": "x:9092"},
        2,
        "PROJECTIONIST_BOOTSTRAP_SERVERS",
    ),
    (
        "lower-case typo",
        ["status"],
        {"projectionist_log_levle": "DEBUG"},
        2,
        "PROJECTIONIST_LOG_LEVEL",
    ),
    (
        "ledger hours 1e20",
        ["status"],
        {"PROJECTIONIST_LEDGER_RETENTION_HOURS": "1e20"},
        2,
        "ledger_retention_hours",
    ),
    (
        "ledger hours nan",
        ["status"],
        {"PROJECTIONIST_LEDGER_RETENTION_HOURS": "nan"},
        2,
        "ledger_retention_hours",
    ),
    ("infinite backoff", ["status"], {"PROJECTIONIST_RETRY_MAX_S": "inf"}, 2, "retry_max_s"),
    ("huge grace", ["status"], {"PROJECTIONIST_SHUTDOWN_GRACE_S": "1e300"}, 2, "shutdown_grace_s"),
    (
        "session timeout beyond 32 bits",
        ["status"],
        {"PROJECTIONIST_SESSION_TIMEOUT_MS": "99999999999"},
        2,
        "session_timeout_ms",
    ),
    (
        "batch size not a number",
        ["status"],
        {"PROJECTIONIST_BATCH_MAX_MESSAGES": "many"},
        2,
        "batch_max_messages",
    ),
    (
        "batch size zero",
        ["status"],
        {"PROJECTIONIST_BATCH_MAX_MESSAGES": "0"},
        2,
        "batch_max_messages",
    ),
    ("empty blog topic", ["status"], {"PROJECTIONIST_BLOG_TOPIC": ""}, 2, "blog_topic"),
    (
        "topic with a space",
        ["status"],
        {"PROJECTIONIST_ORDERS_TOPIC": "my orders"},
        2,
        "orders_topic",
    ),
    ("topic too long", ["status"], {"PROJECTIONIST_BLOG_TOPIC": "t" * 250}, 2, "blog_topic"),
    (
        "sender not an address",
        ["status"],
        {"PROJECTIONIST_MAIL_FROM": "not an address"},
        2,
        "mail_from",
    ),
    ("two senders", ["status"], {"PROJECTIONIST_MAIL_FROM": "a@x.test, b@x.test"}, 2, "mail_from"),
    (
        "missing Kafka CA file",
        ["status"],
        {
            "PROJECTIONIST_SECURITY_PROTOCOL": "SSL",
            "PROJECTIONIST_SSL_CA_LOCATION": "/nonexistent/ca.pem",
        },
        2,
        "PROJECTIONIST_SSL_CA_LOCATION",
    ),
    (
        "Kafka CA is a folder",
        ["status"],
        {"PROJECTIONIST_SSL_CA_LOCATION": "/"},
        2,
        "PROJECTIONIST_SSL_CA_LOCATION",
    ),
    (
        "missing SMTP CA file",
        ["status"],
        {"PROJECTIONIST_SMTP_CA_FILE": "/nonexistent/ca.pem"},
        2,
        "PROJECTIONIST_SMTP_CA_FILE",
    ),
    (
        "both TLS modes",
        ["status"],
        {"PROJECTIONIST_SMTP_SSL": "true", "PROJECTIONIST_SMTP_STARTTLS": "true"},
        2,
        "smtp",
    ),
    ("SMTP port zero", ["status"], {"PROJECTIONIST_SMTP_PORT": "0"}, 2, "smtp_port"),
    (
        "unknown dead-letter mode",
        ["status"],
        {"PROJECTIONIST_DEAD_LETTER_MODE": "explode"},
        2,
        "dead_letter_mode",
    ),
    ("unknown log level", ["status"], {"PROJECTIONIST_LOG_LEVEL": "LOUD"}, 2, "log_level"),
    ("bad API address", ["serve"], {"PROJECTIONIST_API_ADDRESS": "nowhere"}, 2, "api_address"),
    (
        "port out of range",
        ["serve"],
        {"PROJECTIONIST_API_ADDRESS": "127.0.0.1:99999"},
        2,
        "api_address",
    ),
    (
        "zero header timeout",
        ["serve"],
        {"PROJECTIONIST_HTTP_HEADER_TIMEOUT_S": "0"},
        2,
        "http_header_timeout_s",
    ),
    (
        "secret twice",
        ["status"],
        {
            "PROJECTIONIST_SASL_PASSWORD": SECRET,
            "PROJECTIONIST_SASL_PASSWORD_FILE": "/etc/hostname",
        },
        2,
        "not both",
    ),
    (
        "unknown projection module",
        ["consume", "nosuch"],
        {"PROJECTIONIST_PROJECTIONS": "nosuchmodule:Thing"},
        2,
        "nosuchmodule",
    ),
    (
        "missing table file",
        ["status"],
        {"PROJECTIONIST_TABLE_PROJECTIONS": "/nonexistent/tables.toml"},
        2,
        "tables.toml",
    ),
    (
        "table file not TOML",
        ["status"],
        {"PROJECTIONIST_TABLE_PROJECTIONS": "/etc/hostname"},
        2,
        "TOML",
    ),
    (
        "projection that is a module",
        ["status"],
        {"PROJECTIONIST_PROJECTIONS": "os:path"},
        2,
        "os:path",
    ),
    (
        "missing schema folder",
        ["status"],
        {"PROJECTIONIST_SCHEMA_PATHS": "/nonexistent/avro"},
        2,
        "PROJECTIONIST_SCHEMA_PATHS",
    ),
    (
        "registry not a URL",
        ["status"],
        {"PROJECTIONIST_SCHEMA_REGISTRY_URL": "registry:8081"},
        2,
        "schema_registry_url",
    ),
    (
        "metrics address",
        ["consume", "blog"],
        {"PROJECTIONIST_METRICS_ADDRESS": "nope"},
        2,
        "metrics address",
    ),
    (
        "commands address",
        ["serve-commands"],
        {"PROJECTIONIST_COMMANDS_ADDRESS": "8081"},
        2,
        "commands_address",
    ),
    ("empty group prefix", ["status"], {"PROJECTIONIST_GROUP_PREFIX": " "}, 2, "group_prefix"),
    ("empty SMTP host", ["status"], {"PROJECTIONIST_SMTP_HOST": ""}, 2, "smtp_host"),
    ("empty database URL", ["status"], {"PROJECTIONIST_DATABASE_URL": ""}, 2, "not a URL"),
    (
        "SQLite file in no folder",
        ["status"],
        {"PROJECTIONIST_DATABASE_URL": "sqlite:////nonexistent/dir/x.db"},
        2,
        "does not exist",
    ),
    (
        "no such PostgreSQL database",
        ["status"],
        {"PROJECTIONIST_DATABASE_URL": PG_BASE_URL + "/nosuchdb_hostile"},
        1,
        "does not exist",
    ),
    (
        "unknown assignment strategy",
        ["status"],
        {"PROJECTIONIST_ASSIGNMENT_STRATEGY": "sticky"},
        2,
        "assignment_strategy",
    ),
    (
        "unknown security protocol",
        ["status"],
        {"PROJECTIONIST_SECURITY_PROTOCOL": "TLS"},
        2,
        "security_protocol",
    ),
    (
        "unknown SASL mechanism",
        ["status"],
        {"PROJECTIONIST_SASL_MECHANISM": "GSSAPI"},
        2,
        "sasl_mechanism",
    ),
    ("zero partitions", ["status"], {"PROJECTIONIST_TOPIC_PARTITIONS": "0"}, 2, "topic_partitions"),
    (
        "negative heartbeat",
        ["status"],
        {"PROJECTIONIST_HEARTBEAT_INTERVAL_MS": "-1"},
        2,
        "heartbeat_interval_ms",
    ),
    ("tiny prefetch", ["status"], {"PROJECTIONIST_QUEUED_MAX_KBYTES": "1"}, 2, "queued_max_kbytes"),
    ("zero batch wait", ["status"], {"PROJECTIONIST_BATCH_TIMEOUT_S": "0"}, 2, "batch_timeout_s"),
    ("zero API limit", ["serve"], {"PROJECTIONIST_API_MAX_LIMIT": "0"}, 2, "api_max_limit"),
    (
        "API wait too long",
        ["serve"],
        {"PROJECTIONIST_API_WAIT_TIMEOUT_S": "1000"},
        2,
        "api_wait_timeout_s",
    ),
    (
        "zero mail attempts",
        ["status"],
        {"PROJECTIONIST_MAIL_MAX_ATTEMPTS": "0"},
        2,
        "mail_max_attempts",
    ),
    (
        "negative reconcile interval",
        ["status"],
        {"PROJECTIONIST_RECONCILE_INTERVAL_S": "-5"},
        2,
        "reconcile_interval_s",
    ),
    (
        "boolean that is not one",
        ["status"],
        {"PROJECTIONIST_EVENT_DEDUP": "maybe"},
        2,
        "event_dedup",
    ),
    ("unknown log format", ["status"], {"PROJECTIONIST_LOG_FORMAT": "xml"}, 2, "log_format"),
    ("zero relay batch", ["relay"], {"PROJECTIONIST_RELAY_BATCH_SIZE": "0"}, 2, "relay_batch_size"),
    ("zero SMTP timeout", ["status"], {"PROJECTIONIST_SMTP_TIMEOUT_S": "0"}, 2, "smtp_timeout_s"),
    (
        "body timeout of a day",
        ["serve"],
        {"PROJECTIONIST_HTTP_BODY_TIMEOUT_S": "86400"},
        2,
        "http_body_timeout_s",
    ),
]


@pytest.fixture(scope="module")
def secret_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("secrets")
    latin1 = folder / "latin1"
    latin1.write_bytes(b"postgresql://u:caf\xe9@h/db\n")
    empty = folder / "empty"
    empty.write_text("")
    return {"latin1": latin1, "empty": empty, "missing": folder / "nope"}


@pytest.mark.parametrize(
    ("label", "command", "env", "code", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_a_misconfiguration_is_one_line(
    bootstrap: str,
    tmp_path: Path,
    label: str,
    command: list[str],
    env: dict[str, str],
    code: int,
    words: str,
) -> None:
    """One mistake in the environment: one `error:` line naming it, exit 2 (1 for a database away), no traceback, no secret."""
    base = {
        **TEST_ENV,
        "PROJECTIONIST_BOOTSTRAP_SERVERS": bootstrap,
        "PROJECTIONIST_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "PROJECTIONIST_LOG_FORMAT": "console",
    }
    result = run_cli(command, env={**base, **env}, timeout_s=60)
    assert_one_error_line(result, code, words, secret=SECRET)


@pytest.mark.parametrize(
    ("which", "words"), [("latin1", "not UTF-8"), ("empty", "empty"), ("missing", "cannot read")]
)
def test_a_bad_secret_file_is_one_line(
    bootstrap: str, secret_files: dict[str, Path], which: str, words: str
) -> None:
    """PROJECTIONIST_DATABASE_URL_FILE naming a non-UTF-8, empty or missing file: one line, exit 2, the content never shown."""
    env = {
        **TEST_ENV,
        "PROJECTIONIST_BOOTSTRAP_SERVERS": bootstrap,
        "PROJECTIONIST_DATABASE_URL_FILE": str(secret_files[which]),
    }
    result = run_cli(["status"], env=env, timeout_s=60)
    assert_one_error_line(result, 2, words, secret=SECRET)
    assert "caf" not in result.stderr


def test_credentials_for_a_server_without_auth_stop_the_consumer(
    bootstrap: str, topic_env: dict[str, str], sqlite_url: str
) -> None:
    """SMTP credentials, a server that offers no AUTH: `consume notifications` stops with one line (exit 2) instead of retrying forever."""
    publish(bootstrap, topic_env["PROJECTIONIST_ORDERS_TOPIC"], order_events(orders=2, seed=177))
    with smtp_server() as smtp:
        env = {
            **topic_env,
            "PROJECTIONIST_DATABASE_URL": sqlite_url,
            "PROJECTIONIST_SMTP_HOST": "127.0.0.1",
            "PROJECTIONIST_SMTP_PORT": str(smtp.port),
            "PROJECTIONIST_SMTP_USERNAME": "shop",
            "PROJECTIONIST_SMTP_PASSWORD": SECRET,
            "PROJECTIONIST_LOG_FORMAT": "console",
            "PROJECTIONIST_LOG_LEVEL": "WARNING",
        }
        result = run_cli(["consume", "notifications", "--drain"], env=env, timeout_s=90)
        assert smtp.received == []
    assert_one_error_line(result, 2, "offers no AUTH", secret=SECRET)
