"""The command side's own tables: posts with tags, orders with lines, and the outbox.

Written in the same database transaction as each state change, the ``outbox`` row is
the event: the relay publishes it later, so an event exists exactly when the change
committed. ``outbox.id`` orders rows; per aggregate it also follows the aggregate's
version, because each service writes its outbox row after updating (and so locking)
the aggregate's own row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = ["CommandTables", "create_command_tables"]

# SQLite assigns AUTOINCREMENT-like rowids only to INTEGER PRIMARY KEY columns.
_ID = BigInteger().with_variant(Integer(), "sqlite")


class CommandTables:
    """Table definitions of the command side (SQLAlchemy Core), on one ``MetaData``."""

    def __init__(self) -> None:
        self.metadata = MetaData()
        m = self.metadata
        self.posts = Table(
            "cmd_posts",
            m,
            Column("post_id", String(200), primary_key=True),
            Column("title", Text, nullable=False),
            Column("description", Text, nullable=False),
            Column("author", String(200), nullable=False),
            Column("slug", String(200), nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
            Column("deleted_at", DateTime(timezone=True)),
            Column("version", BigInteger, nullable=False),
        )
        self.post_tags = Table(
            "cmd_post_tags",
            m,
            Column("post_id", ForeignKey("cmd_posts.post_id"), primary_key=True),
            Column("position", Integer, primary_key=True),
            Column("tag", String(64), nullable=False),
        )
        self.orders = Table(
            "cmd_orders",
            m,
            Column("order_id", String(200), primary_key=True),
            Column("customer_id", String(200), nullable=False),
            Column("customer_email", String(320), nullable=False),
            Column("currency", String(3), nullable=False),
            Column("total_minor", BigInteger, nullable=False),
            Column("status", String(16), nullable=False),  # placed | fulfilled
            Column("placed_at", DateTime(timezone=True), nullable=False),
            Column("fulfilled_at", DateTime(timezone=True)),
            Column("version", BigInteger, nullable=False),
        )
        self.order_lines = Table(
            "cmd_order_lines",
            m,
            Column("order_id", ForeignKey("cmd_orders.order_id"), primary_key=True),
            Column("line_no", Integer, primary_key=True),
            Column("sku", String(64), nullable=False),
            Column("quantity", Integer, nullable=False),
            Column("unit_price_minor", BigInteger, nullable=False),
        )
        self.outbox = Table(
            "outbox",
            m,
            Column("id", _ID, primary_key=True, autoincrement=True),
            Column("aggregate_type", String(32), nullable=False),
            Column("aggregate_id", String(200), nullable=False),
            Column("aggregate_version", BigInteger, nullable=False),
            Column("event_id", String(36), nullable=False, unique=True),
            Column("event_type", String(200), nullable=False),
            Column("topic", String(249), nullable=False),
            Column("payload", LargeBinary, nullable=False, doc="Avro single-object bytes"),
            Column("occurred_at_ms", BigInteger, nullable=False),
            Column("published_at", DateTime(timezone=True)),
            # Leads with aggregate_id: the relay's per-aggregate order check looks rows up by it.
            UniqueConstraint("aggregate_id", "aggregate_type", "aggregate_version"),
        )
        # The relay's claim scans unpublished rows by id; published rows stay for audit
        # and for a relay crash's re-publication, so keep the scan off them.
        Index(
            "ix_outbox_unpublished",
            self.outbox.c.id,
            postgresql_where=self.outbox.c.published_at.is_(None),
            sqlite_where=self.outbox.c.published_at.is_(None),
        )

    def create(self, engine: Engine) -> None:
        """Create the tables if missing (serialized on PostgreSQL: replicas start together)."""
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Bounded like projections' ddl_lock (producers cannot import it): a
                # session holding the lock makes the start fail with a lock timeout
                # (DatabaseUnavailable at the edge) instead of blocking for good.
                conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('projectionist.ddl'))"))
                conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))
            self.metadata.create_all(conn)


def create_command_tables(engine: Engine) -> CommandTables:
    tables = CommandTables()
    tables.create(engine)
    return tables
