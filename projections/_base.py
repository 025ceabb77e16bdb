"""What a projection is: a named, versioned fold of events into tables it owns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, MetaData, Table

from projections._event import Event

__all__ = ["ApplyResult", "Projection"]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What a batch did: events that changed state, and events ignored as stale."""

    applied: int
    stale: int = 0


class Projection(ABC):
    """A read model: consumes ``topics`` and folds them into its own tables.

    ``apply`` runs inside the caller's transaction, which also advances the
    checkpoint; it must use set-based statements for the whole batch and never commit.
    """

    #: stable name, used in CLI commands, metrics and the consumer group id
    name: str
    #: bump when the fold changes meaning; tables and group id carry it
    version: int
    #: topics this projection consumes
    topics: tuple[str, ...]
    #: True when replaying already-applied events cannot change the result
    #: (version-guarded upserts). Counters and sums are False: they need a rebuild.
    idempotent_replay: bool = True
    #: True when applying sends something outside the database (e-mails)
    has_side_effects: bool = False
    #: True when the runtime must also dedup by event id (non-idempotent writes)
    needs_event_dedup: bool = False
    #: the record fields ``apply`` reads, per event type; None: it may read any field of
    #: the newest schema version. Declared, an event written with an older version that
    #: already has those fields is decoded as written, not resolved to the newest
    #: (``AvroSerde.reading``): its record then lacks the fields only newer versions add.
    reads: Mapping[str, frozenset[str]] | None = None
    #: False: records hold the Avro base value of every logical type (``uuid`` a str,
    #: ``timestamp-millis`` int milliseconds since the epoch, ``date`` int days) instead
    #: of ``UUID``/``datetime`` objects. Building those per event was ~1/5 of a blog
    #: event's decode; a projection that writes few of the events it reads (the newest
    #: per key) converts only what it writes. Events' ``event_id`` is a str either way.
    logical_types: bool = True

    def __init__(self, *, generation: int | None = None) -> None:
        #: physical tables are suffixed with the generation (default: the version)
        self.generation = generation if generation is not None else self.version
        self.metadata = MetaData()
        self.define_tables(self.metadata)

    @property
    def slot(self) -> str:
        """Storage identity: checkpoint key and table suffix (``blog_v1``)."""
        return f"{self.name}_v{self.generation}"

    def table_name(self, base: str) -> str:
        return f"{base}_v{self.generation}"

    def tables(self) -> list[Table]:
        return list(self.metadata.sorted_tables)

    def create_tables(self, conn: Connection) -> None:
        """Create this generation's tables if missing, then :meth:`upgrade` existing ones."""
        self.metadata.create_all(conn)
        self.upgrade(conn)

    def upgrade(self, conn: Connection) -> None:  # noqa: B027 - an optional hook, no-op by default
        """Bring this generation's existing tables up to the definition where that is safe
        in place, or raise :class:`ConfigurationError` saying to rebuild (default: nothing;
        a code projection changes its tables by bumping ``version``)."""

    @abstractmethod
    def define_tables(self, metadata: MetaData) -> None:
        """Declare this projection's tables on ``metadata`` (names via ``table_name``)."""

    @abstractmethod
    def apply(self, conn: Connection, events: Sequence[Event]) -> ApplyResult:
        """Fold ``events`` (one batch, offset order per partition) into the tables."""
