"""Test machinery, one module per kind of part (what each holds is in its name):

* ``waiting``: ``wait_for`` (a condition with a deadline), ``missing`` (a real part is
  missing: fail under CI=true, skip elsewhere), ``unique`` names;
* ``processes``: the ``projectionist`` CLI and test drivers as processes, their JSON;
* ``databases``: a fresh PostgreSQL database per test, checkpoint sums;
* ``broker``: which broker the tests use; publishing, poison, reading a topic back;
* ``settings``: settings for in-process runners;
* ``runners``: a runner on a thread with its endpoints, a freezable Kafka client;
* ``proxy``: the TCP proxy a test cuts to make PostgreSQL unreachable;
* ``prometheus``: a real Prometheus server; ``servers``: the query API, SMTP;
* ``commands``: the command side on a database; ``folding``: the batch transaction
  without a broker; ``fakes``: plain messages and a dead-letter sink;
* ``oracle``: the expected read models, from the published events alone;
* ``crd_schemas``: offline schemas of the custom resources the manifests use.

The names most tests need are re-exported here.
"""

from consumers.kafka.broker import free_port
from tests.support.broker import docker_answers, kafka_bootstrap
from tests.support.databases import (
    PG_BASE_URL,
    checkpoint_total,
    fresh_postgres_database,
    pg_reachable,
)
from tests.support.processes import (
    PROJECTIONIST,
    TEST_ENV,
    json_line,
    run_cli,
    start_cli,
    start_module,
)
from tests.support.settings import load_test_settings
from tests.support.waiting import IN_CI, missing, unique, wait_for

__all__ = [
    "IN_CI",
    "PG_BASE_URL",
    "PROJECTIONIST",
    "TEST_ENV",
    "checkpoint_total",
    "docker_answers",
    "free_port",
    "fresh_postgres_database",
    "json_line",
    "kafka_bootstrap",
    "load_test_settings",
    "missing",
    "pg_reachable",
    "run_cli",
    "start_cli",
    "start_module",
    "unique",
    "wait_for",
]
