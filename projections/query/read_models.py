"""Pure SQL reads over the read models: what the query API serves, nothing it writes.

The tables come from the projection objects this is given (``projection.table_name``
with the projection's generation), so pointing the API at another generation, e.g. an
"active generation" after a rebuild, is a matter of passing other projection objects.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, and_, or_, select

from projections.blog import BlogProjection, top_tags
from projections.money import format_amount
from projections.notifications.projection import NotificationsProjection
from projections.orders import OrdersProjection
from projections.progress.ledger import ledger_table
from schemas.utc import as_utc

__all__ = ["BadCursor", "PostsPage", "ReadModels"]

_MAX_ID = 200  # the width of the id columns


class BadCursor(ValueError):
    """A pagination cursor this API did not issue (or one that was tampered with)."""


@dataclass(frozen=True, slots=True)
class PostsPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


class ReadModels:
    """Reads over the blog, orders and notifications read models of one database."""

    def __init__(
        self,
        *,
        engine: Engine,
        blog: BlogProjection,
        orders: OrdersProjection,
        notifications: NotificationsProjection | None = None,
    ) -> None:
        self.engine = engine
        self.blog = blog
        self.orders = orders
        self.notifications = notifications
        self._ledger = ledger_table(MetaData())

    # -- blog --------------------------------------------------------------------------------
    def tags(self, limit: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [{"tag": t, "posts_count": n} for t, n in top_tags(conn, self.blog, limit)]

    def post(self, post_id: str) -> dict[str, Any] | None:
        p = self.blog.posts
        with self.engine.connect() as conn:
            row = conn.execute(select(p).where(p.c.post_id == post_id)).mappings().first()
        return None if row is None else _post(dict(row))

    def posts(self, *, tag: str | None, limit: int, cursor: str | None) -> PostsPage:
        """Live posts, newest first (created_at, then post_id, both descending)."""
        p = self.blog.posts
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
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]["created_at"], rows[-1]["post_id"]) if more else None
        return PostsPage([_post(r) for r in rows], next_cursor)

    # -- orders ------------------------------------------------------------------------------
    def order(self, order_id: str) -> dict[str, Any] | None:
        t = self.orders.order_summaries
        with self.engine.connect() as conn:
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
        t = self.orders.customer_stats
        with self.engine.connect() as conn:
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
        t = self.orders.daily_sales
        query = select(t).where(and_(t.c.day >= start, t.c.day <= end))
        if currency is not None:
            query = query.where(t.c.currency == currency)
        with self.engine.connect() as conn:
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
        if self.notifications is None:
            return []
        t = self.notifications.outbox
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
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["recorded_at"] = _iso(row["recorded_at"])
            row["sent_at"] = _iso(row["sent_at"])
        return rows

    # -- positions (read-your-writes) ----------------------------------------------------------
    def post_version(self, post_id: str) -> tuple[int, bool] | None:
        """The stored version of a post and whether it is deleted; None: not projected yet."""
        p = self.blog.posts
        with self.engine.connect() as conn:
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
        return self._event_recorded(self.orders.slot, event_id)

    def _event_recorded(self, slot: str, event_id: str) -> bool:
        t = self._ledger
        with self.engine.connect() as conn:
            return _has_row(
                conn,
                select(t.c.event_id).where(and_(t.c.projection == slot, t.c.event_id == event_id)),
            )


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
