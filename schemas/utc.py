"""The one rule for naive timestamps: Projectionist stores and exchanges UTC only.

SQLite hands ``DateTime(timezone=True)`` columns back naive (they were written as UTC);
PostgreSQL hands them back aware. A user's ISO-8601 time without an offset means UTC.
Every layer reads such values through :func:`as_utc`.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["as_utc"]


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware datetime: a naive one is taken to be UTC already."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
