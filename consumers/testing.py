"""A test kit for your own projections: events in, tables out, through the real transaction.

:func:`feed` encodes each event with its Avro schema (yours beside the shipped ones),
hands the messages in batches to the same :class:`BatchProcessor` a consumer runs —
checkpoint compare-and-set, steps (event-id ledger when the projection asks for it),
``apply``, poison isolation and dead letters — on the database you name, and returns
every table of the projection as rows, so an oracle test is a few lines::

    from consumers.testing import feed

    def test_newest_row_per_customer(projection_database):   # consumers.testing_fixtures
        fed = feed(
            CustomerTable(),
            [("crm.CustomerUpdated", {...}), ("crm.CustomerUpdated", {...})],
            database_url=projection_database,
            schemas=[Path("schemas")],
        )
        assert fed.tables["customers"] == [{"customer_id": "c1", ...}]

Nothing here needs a broker. ``batch_size`` and ``partitions`` let a test check that
the result does not depend on batching (run it twice, compare).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from consumers.kafka.dead_letters import DeadLetter, Refused
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from projections import CheckpointStore, Projection, make_engine
from projections.declarative.projection import TableProjection
from projections.declarative.spec import read_table_specs
from projections.generations.versions import logical_names
from schemas import AvroSerde, SchemaCatalog
from schemas.errors import ConfigurationError

__all__ = ["Fed", "Given", "Message", "feed", "postgres_database", "table_projection"]


@dataclass(frozen=True, slots=True)
class Given:
    """One event to feed: its type (Avro full name), its record, optionally its key."""

    event_type: str
    record: Mapping[str, Any]
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Fed:
    """What feeding did: the tables (logical name → rows in primary-key order), the
    counters, and the events that were dead-lettered (their index, the error)."""

    tables: dict[str, list[dict[str, Any]]]
    stats: RunStats
    dead_letters: list[tuple[int, str]] = field(default_factory=list)


def feed(
    projection: Projection,
    events: Sequence[Given | tuple[str, Mapping[str, Any]]],
    *,
    database_url: str,
    schemas: Sequence[Path] = (),
    catalog: SchemaCatalog | None = None,
    batch_size: int = 100,
    partitions: int = 1,
) -> Fed:
    """Feed ``events`` (in order) through ``projection``'s real batch transaction.

    Feeding the same database again continues the log (offsets after the stored
    checkpoints): a second call is "these events came later".
    """
    catalog = catalog or SchemaCatalog.load(extra=schemas)
    serde = AvroSerde(catalog)
    topic = projection.topics[0]
    sink = _CollectedDeadLetters()
    stats = RunStats()
    processor = BatchProcessor(
        engine=make_engine(database_url),
        projection=projection,
        serde=serde,
        checkpoints=CheckpointStore(),
        dead_letters=sink,
        stats=stats,
    )
    try:
        processor.ensure_schema()
        partitions_of = [(topic, p) for p in range(partitions)]
        stored = processor.load_positions(partitions_of)
        positions: dict[tuple[str, int], int | None] = {tp: stored.get(tp) for tp in partitions_of}
        messages = _messages(serde, topic, events, positions)
        dead: list[DeadLetter] = []
        for start in range(0, len(messages), max(1, batch_size)):
            batch = processor.prepare(messages[start : start + batch_size], positions)
            committed = processor.commit(batch)
            positions.update(committed.positions)
            # as committed, not as sent: a letter dead-lettered before (another generation
            # on this database) is not sent again, but it is this feed's dead letter too
            dead.extend(committed.batch.dead_letters)
        tables = _read_tables(processor, projection)
    finally:
        processor.close()
    letters = [
        (msg.index, f"{type(letter.error).__name__}: {letter.error}")
        for letter in dead
        if isinstance(msg := letter.message, Message)
    ]
    return Fed(tables, stats, sorted(letters))


def _messages(
    serde: AvroSerde,
    topic: str,
    events: Sequence[Given | tuple[str, Mapping[str, Any]]],
    positions: Mapping[tuple[str, int], int | None],
) -> list[Message]:
    """Each event Avro-encoded at the next offset of its key's partition."""
    partitions = len(positions)
    lasts = [positions[(topic, p)] for p in range(partitions)]
    offsets = [0 if last is None else last + 1 for last in lasts]
    out: list[Message] = []
    for index, event in enumerate(events):
        given = event if isinstance(event, Given) else Given(event[0], event[1])
        key = given.key.encode() if given.key is not None else None
        partition = zlib.crc32(key) % partitions if key is not None else 0
        try:
            value = serde.encode(given.event_type, given.record)
        except (TypeError, ValueError, KeyError) as exc:  # fastavro: the record misses its schema
            raise ValueError(
                f"event {index} ({given.event_type}) does not fit its schema: {exc}"
            ) from exc
        out.append(Message(topic, partition, offsets[partition], value, key, index=index))
        offsets[partition] += 1
    return out


def table_projection(
    path: Path, name: str | None = None, *, schemas: Sequence[Path] = ()
) -> TableProjection:
    """The declarative projection ``name`` (default: the only one) of a TOML file."""
    catalog = SchemaCatalog.load(extra=schemas)
    specs = read_table_specs(path, catalog)
    chosen = [s for s in specs if name is None or s.name == name]
    if len(chosen) != 1:
        known = ", ".join(s.name for s in specs)
        raise ConfigurationError(f"{path.name}: say which projection ({known})")
    return TableProjection(chosen[0], catalog)


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url``; dropped after."""
    import uuid

    base = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"pj_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def _read_tables(
    processor: BatchProcessor, projection: Projection
) -> dict[str, list[dict[str, Any]]]:
    names = logical_names(projection)
    out: dict[str, list[dict[str, Any]]] = {}
    with processor.engine.connect() as conn:
        for table in projection.tables():
            order = list(table.primary_key.columns) or list(table.columns)
            rows = conn.execute(select(table).order_by(*order))
            out[names[table.name]] = [dict(r._mapping) for r in rows]
    return out


@dataclass
class Message:
    """A Kafka message as the runtime reads one (``MessageLike``), for tests without a
    broker; ``index`` is the position of the event in the list :func:`feed` was given."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = None
    _headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    _timestamp: tuple[int, int] = (1, 1_700_000_000_000)  # (CreateTime, ms)
    index: int = -1

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def error(self) -> None:
        return None


@dataclass(slots=True)
class _CollectedDeadLetters:
    sent: list[DeadLetter] = field(default_factory=list)

    def send(self, letters: Sequence[DeadLetter]) -> list[Refused]:
        self.sent.extend(letters)
        return []

    def close(self) -> None:
        pass
