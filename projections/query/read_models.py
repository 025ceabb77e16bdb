"""Pure SQL reads over the read models: what the query API serves, nothing it writes.

Every read resolves each projection's *active* generation in its own connection
(one small query on ``projection_versions``) and reads that generation's tables, so a
running API follows a rebuild, a rollback and a cleanup without a restart.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, and_, inspect, or_, select

from projections._base import Projection
from projections.blog import BlogProjection, top_tags
from projections.generations.versions import VERSIONS, active_generations
from projections.money import format_amount
from projections.notifications.projection import NotificationsProjection
from projections.orders import OrdersProjection
from projections.progress.ledger import ledger_table
from schemas.utc import as_utc

__all__ = ["ActiveTables", "BadCursor", "PostsPage", "ProjectionAt", "ReadModels"]

#: (projection name, generation) -> that generation's projection object
ProjectionAt = Callable[[str, int], Projection]

_MAX_ID = 200  # the width of the id columns


class BadCursor(ValueError):
    """A pagination cursor this API did not issue (or one that was tampered with)."""


@dataclass(frozen=True, slots=True)
class PostsPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ActiveTables:
    """The projections (hence tables) of the active generations, at one moment."""

    blog: BlogProjection
    orders: OrdersProjection
    notifications: NotificationsProjection


class ReadModels:
    """Reads over the blog, orders and notifications read models of one database."""

    def __init__(
        self, *, engine: Engine, projection_at: ProjectionAt, defaults: Mapping[str, int]
    ) -> None:
        """``defaults``: each projection's generation before any rebuild (its code version)."""
        self.engine = engine
        self._projection_at = projection_at
        self._defaults = dict(defaults)
        self._built: dict[tuple[str, int], Projection] = {}
        self._versions_seen = False
        self._ledger = ledger_table(MetaData())

    @classmethod
    def over(
        cls,
        *,
        engine: Engine,
        blog: BlogProjection,
        orders: OrdersProjection,
        notifications: NotificationsProjection,
    ) -> ReadModels:
        """Reads over these projections (tests, tools); after a rebuild, the active
        generation is built like them (same class and topic)."""
        given: dict[str, Projection] = {
            "blog": blog,
            "orders": orders,
            "notifications": notifications,
        }

        def projection_at(name: str, generation: int) -> Projection:
            held = given[name]
            if generation == held.generation:
                return held
            return type(held)(topic=held.topics[0], generation=generation)  # type: ignore[call-arg]

        defaults = {name: p.generation for name, p in given.items()}
        return cls(engine=engine, projection_at=projection_at, defaults=defaults)

    def active(self, conn: Connection | None = None) -> ActiveTables:
        """The active generations now (in ``conn``, or a connection of its own)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.active(own)
        if not self._versions_seen:  # once there, the table stays: one catalog lookup
            self._versions_seen = inspect(conn).has_table(VERSIONS.name)
        generations = (
            active_generations(conn, self._defaults, table_exists=True)
            if self._versions_seen
            else self._defaults
        )
        blog, orders, notifications = (self._at(n, generations[n]) for n in _NAMES)
        assert isinstance(blog, BlogProjection)
        assert isinstance(orders, OrdersProjection)
        assert isinstance(notifications, NotificationsProjection)
        return ActiveTables(blog, orders, notifications)

    def _at(self, name: str, generation: int) -> Projection:
        built = self._built.get((name, generation))
        if built is None:  # the generations in use are few; concurrent builds are harmless
            built = self._built[(name, generation)] = self._projection_at(name, generation)
        return built

    # -- blog --------------------------------------------------------------------------------
    def tags(self, limit: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            blog = self.active(conn).blog
            return [{"tag": t, "posts_count": n} for t, n in top_tags(conn, blog, limit)]

    def post(self, post_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            p = self.active(conn).blog.posts
            row = conn.execute(select(p).where(p.c.post_id == post_id)).mappings().first()
        return None if row is None else _post(dict(row))

    def posts(self, *, tag: str | None, limit: int, cursor: str | None) -> PostsPage:
        """Live posts, newest first (created_at, then post_id, both descending)."""
        with self.engine.connect() as conn:
            return self._posts(conn, tag=tag, limit=limit, cursor=cursor)

    def _posts(
        self, conn: Connection, *, tag: str | None, limit: int, cursor: str | None
    ) -> PostsPage:
        p = self.active(conn).blog.posts
        query = select(p).where(p.c.deleted_at.is_(None))
        if tag is not None:
            # tags is a JSON array of strings; match the element with its quotes.
            needle = json.dumps(tag).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(p.c.tags.like(f"%{needle}%", escape="\\"))
        if cursor is not None:
            created, post_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    p.c.created_at < created,
                    and_(p.c.created_at == created, p.c.post_id < post_id),
                )
            )
        query = query.order_by(p.c.created_at.desc(), p.c.post_id.desc()).limit(limit + 1)
        rows = [dict(r) for r in conn.execute(query).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]["created_at"], rows[-1]["post_id"]) if more else None
        return PostsPage([_post(r) for r in rows], next_cursor)

    # -- orders ------------------------------------------------------------------------------
    def order(self, order_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            t = self.active(conn).orders.order_summaries
            row = conn.execute(select(t).where(t.c.order_id == order_id)).mappings().first()
        if row is None:
            return None
        return {
            "order_id": row["order_id"],
            "customer_id": row["customer_id"],
            "line_count": row["line_count"],
            "lines": json.loads(row["lines"]),
            "currency": row["currency"],
            "total_minor": row["total_minor"],
            "total": format_amount(row["total_minor"], row["currency"]),
            "fulfilled_at": _iso(row["fulfilled_at"]),
        }

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            t = self.active(conn).orders.customer_stats
            rows = list(
                conn.execute(
                    select(t).where(t.c.customer_id == customer_id).order_by(t.c.currency)
                ).mappings()
            )
        if not rows:
            return None
        return {
            "customer_id": customer_id,
            "orders_count": sum(r["orders_count"] for r in rows),
            "first_order_at": _iso(min(as_utc(r["first_order_at"]) for r in rows)),
            "last_order_at": _iso(max(as_utc(r["last_order_at"]) for r in rows)),
            "revenue": [
                {
                    "currency": r["currency"],
                    "orders_count": r["orders_count"],
                    "revenue_minor": r["revenue_minor"],
                    "revenue": format_amount(r["revenue_minor"], r["currency"]),
                }
                for r in rows
            ],
        }

    def daily_sales(self, *, start: date, end: date, currency: str | None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            t = self.active(conn).orders.daily_sales
            query = select(t).where(and_(t.c.day >= start, t.c.day <= end))
            if currency is not None:
                query = query.where(t.c.currency == currency)
            rows = list(conn.execute(query.order_by(t.c.day, t.c.currency)).mappings())
        return [
            {
                "day": r["day"].isoformat(),
                "currency": r["currency"],
                "orders_count": r["orders_count"],
                "revenue_minor": r["revenue_minor"],
                "revenue": format_amount(r["revenue_minor"], r["currency"]),
            }
            for r in rows
        ]

    # -- notifications -------------------------------------------------------------------------
    def notification_outbox(self, *, status: str, limit: int) -> list[dict[str, Any]]:
        """E-mails in one status (``failed`` surfaces permanent rejections), oldest first."""
        with self.engine.connect() as conn:
            return self._outbox(conn, status=status, limit=limit)

    def _outbox(self, conn: Connection, *, status: str, limit: int) -> list[dict[str, Any]]:
        t = self.active(conn).notifications.outbox
        query = (
            select(
                t.c.event_id,
                t.c.order_id,
                t.c.recipient,
                t.c.status,
                t.c.attempts,
                t.c.last_error,
                t.c.recorded_at,
                t.c.sent_at,
            )
            .where(t.c.status == status)
            .order_by(t.c.recorded_at, t.c.event_id)
            .limit(limit)
        )
        rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["recorded_at"] = _iso(row["recorded_at"])
            row["sent_at"] = _iso(row["sent_at"])
        return rows

    # -- positions (read-your-writes) ----------------------------------------------------------
    def post_version(self, post_id: str) -> tuple[int, bool] | None:
        """The stored version of a post and whether it is deleted; None: not projected yet."""
        with self.engine.connect() as conn:
            p = self.active(conn).blog.posts
            row = conn.execute(
                select(p.c.version, p.c.deleted_at).where(p.c.post_id == post_id)
            ).first()
        return None if row is None else (int(row.version), row.deleted_at is not None)

    def orders_applied(self, event_id: str) -> bool:
        """Whether the orders projection has applied the event (its ledger holds the id).

        The ledger commits in the same transaction as the read models, so "recorded"
        means "visible". Ids older than the ledger retention are purged: such an old
        position can no longer be confirmed (the API then answers 503 after its wait).
        """
        t = self._ledger
        with self.engine.connect() as conn:
            slot = self.active(conn).orders.slot
            return _has_row(
                conn,
                select(t.c.event_id).where(and_(t.c.projection == slot, t.c.event_id == event_id)),
            )


_NAMES = ("blog", "orders", "notifications")


def _has_row(conn: Connection, query: Any) -> bool:
    return conn.execute(query.limit(1)).first() is not None


def _post(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "post_id": row["post_id"],
        "title": row["title"],
        "description": row["description"],
        "tags": json.loads(row["tags"]),
        "author": row["author"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "version": row["version"],
        "deleted": row["deleted_at"] is not None,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _encode_cursor(created_at: datetime, post_id: str) -> str:
    raw = json.dumps([as_utc(created_at).isoformat(), post_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, post_id = json.loads(raw)
        if not isinstance(post_id, str) or not 0 < len(post_id) <= _MAX_ID or "\x00" in post_id:
            raise TypeError("post_id")
        when = as_utc(datetime.fromisoformat(created))
        when = when.astimezone(UTC)  # 9999-12-31T23:59:59-14:00 overflows here
    except (
        binascii.Error,
        ValueError,
        TypeError,
        UnicodeDecodeError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not one this API issued") from exc
    return when, post_id
