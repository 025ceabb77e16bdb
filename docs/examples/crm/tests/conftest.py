"""Every test that takes ``projection_database`` runs on SQLite and on PostgreSQL."""

from consumers.testing_fixtures import projection_database

__all__ = ["projection_database"]
