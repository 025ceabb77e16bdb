"""A pytest fixture for your projections' tests: each test runs on SQLite and on PostgreSQL.

Use it from a test module or your ``conftest.py``::

    from consumers.testing_fixtures import projection_database  # noqa: F401

``projection_database`` is a fresh database URL: a SQLite file in the test's temporary
folder, then a new database on the PostgreSQL server of ``DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped after the test. Without a
reachable server the PostgreSQL run is skipped with the reason; under ``CI=true`` it
fails instead, so a CI run cannot pass without it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from consumers.testing import postgres_database

__all__ = ["projection_database"]

_DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def projection_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'projection.db'}"
        return
    server = os.environ.get("DATABASE_URL") or _DEFAULT_SERVER
    url = make_url(server)
    try:
        socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2).close()
    except OSError:
        reason = f"no PostgreSQL server at {url.render_as_string(hide_password=True)}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI=true)", pytrace=False)
        pytest.skip(reason)
    with postgres_database(server) as database:
        yield database
