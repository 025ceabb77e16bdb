"""Fixtures: one broker per test session, a fresh database per test, unique topics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TEST_ENV, fresh_postgres_database, kafka_bootstrap, unique


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    with kafka_bootstrap() as servers:
        yield servers


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'read-models.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes ``db_url`` runs on SQLite and on PostgreSQL (contract tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'read-models.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def topic_env(bootstrap: str) -> dict[str, str]:
    """Environment for a CLI process: this test's own topics and consumer group prefix."""
    return {
        **TEST_ENV,
        "PROJECTIONIST_BOOTSTRAP_SERVERS": bootstrap,
        "PROJECTIONIST_BLOG_TOPIC": unique("blog"),
        "PROJECTIONIST_ORDERS_TOPIC": unique("orders"),
        "PROJECTIONIST_GROUP_PREFIX": unique("it"),
    }
