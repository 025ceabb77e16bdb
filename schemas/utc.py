"""The one rule for naive timestamps: Projectionist stores and exchanges UTC only.

SQLite hands ``DateTime(timezone=True)`` columns back naive (they were written as UTC);
PostgreSQL hands them back aware. A user's ISO-8601 time without an offset means UTC.
Every layer reads such values through :func:`as_utc`; a ``timestamp-millis`` decoded
without logical types (int milliseconds, ``Projection.logical_types``) through
:func:`from_millis`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["as_utc", "from_millis", "to_micros"]


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware datetime: a naive one is taken to be UTC already."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_YEAR_2100_MS = 4_102_444_800_000
_from_timestamp = datetime.fromtimestamp


def from_millis(value: datetime | int) -> datetime:
    """A ``timestamp-millis`` as an aware UTC datetime: int milliseconds since the epoch,
    or already a datetime (records built by hand, other decoders)."""
    if isinstance(value, datetime):
        return as_utc(value).astimezone(UTC)
    if 0 <= value < _YEAR_2100_MS:  # where the float of seconds is exact to the millisecond
        return _from_timestamp(value / 1000, UTC)  # half the cost of the timedelta sum
    return _EPOCH + timedelta(milliseconds=value)


_MICROSECOND = timedelta(microseconds=1)


def to_micros(value: datetime | int) -> int:
    """Microseconds since the epoch of a ``timestamp-millis`` (int milliseconds, or a
    datetime, taken as UTC when naive): exact, unlike a float of seconds."""
    if type(value) is int:
        return value * 1000
    if isinstance(value, datetime):
        return (as_utc(value) - _EPOCH) // _MICROSECOND
    raise TypeError(f"a timestamp is int milliseconds or a datetime, not {type(value).__name__}")
