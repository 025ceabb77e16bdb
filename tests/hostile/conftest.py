"""Fixtures shared by the hostile tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import fresh_postgres_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A read-model database of each kind, one per test module (the APIs' tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'db.sqlite'}"
    else:
        with fresh_postgres_database() as url:
            yield url
