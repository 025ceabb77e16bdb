"""Blog posts, command side: create, update and delete, each with its event in one transaction.

Every change bumps the post's version and appends ``blog.BlogPostUpdated`` (full post
state, schema v2 with ``slug``) or ``blog.BlogPostDeleted`` to the outbox on the same
connection. Callers may pass ``expected_version`` (HTTP ``If-Match``): a post changed
by someone else in between fails with :class:`VersionConflict` and writes nothing.
The aggregate row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite takes the
database write lock at ``BEGIN IMMEDIATE``) before the outbox row is inserted, which
keeps outbox ids in version order per post.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from producers._rules import check_id, check_post, normalise_tags, slugify
from producers.command_errors import AggregateNotFound, InvalidCommand, VersionConflict
from producers.outbox import CommandResult, Outbox
from schemas.events import BLOG_POST_DELETED as POST_DELETED
from schemas.events import BLOG_POST_UPDATED as POST_UPDATED
from schemas.utc import as_utc

__all__ = ["POST_DELETED", "POST_UPDATED", "BlogService"]


def _now() -> datetime:
    return datetime.now(UTC)


class BlogService:
    """The blog aggregate's commands. Thread-safe: each call is one transaction."""

    def __init__(
        self,
        engine: Engine,
        *,
        outbox: Outbox,
        topic: str = "blog.posts",
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.tables = outbox.tables
        self.topic = topic
        self._clock = clock

    def create(
        self,
        *,
        title: str,
        description: str = "",
        tags: Sequence[str] = (),
        author: str,
        post_id: str | None = None,
    ) -> CommandResult:
        check_post(title=title, description=description, tags=tags, author=author)
        if post_id is not None:
            check_id("post_id", post_id)
        post_id = post_id or f"post-{uuid.uuid4().hex}"
        try:
            return self._create(post_id, title, description, author, normalise_tags(tags))
        except IntegrityError:  # a concurrent create of the same id won the race
            raise InvalidCommand([f"post_id: {post_id!r} already exists"]) from None

    def _create(
        self, post_id: str, title: str, description: str, author: str, tags: list[str]
    ) -> CommandResult:
        t = self.tables
        now = self._clock()
        with self.engine.begin() as conn:
            if conn.execute(select(t.posts.c.post_id).where(t.posts.c.post_id == post_id)).first():
                raise InvalidCommand([f"post_id: {post_id!r} already exists"])
            conn.execute(
                t.posts.insert().values(
                    post_id=post_id,
                    title=title,
                    description=description,
                    author=author,
                    slug=slugify(title),
                    created_at=now,
                    updated_at=now,
                    version=1,
                )
            )
            return self._emit_updated(conn, post_id, tags)

    def update(
        self,
        post_id: str,
        *,
        title: str,
        description: str = "",
        tags: Sequence[str] = (),
        expected_version: int | None = None,
    ) -> CommandResult:
        """Replace the post's title, description and tags (the author stays)."""
        check_post(title=title, description=description, tags=tags)
        t = self.tables
        with self.engine.begin() as conn:
            row = self._lock_live(conn, post_id, expected_version)
            conn.execute(
                t.posts.update()
                .where(t.posts.c.post_id == post_id, t.posts.c.version == row.version)
                .values(
                    title=title,
                    description=description,
                    slug=slugify(title),
                    updated_at=self._clock(),
                    version=row.version + 1,
                )
            )
            return self._emit_updated(conn, post_id, normalise_tags(tags))

    def delete(self, post_id: str, *, expected_version: int | None = None) -> CommandResult:
        """Delete the post (terminal: later commands on it answer "not found")."""
        t = self.tables
        now = self._clock()
        with self.engine.begin() as conn:
            row = self._lock_live(conn, post_id, expected_version)
            version = row.version + 1
            conn.execute(
                t.posts.update()
                .where(t.posts.c.post_id == post_id, t.posts.c.version == row.version)
                .values(deleted_at=now, updated_at=now, version=version)
            )
            conn.execute(t.post_tags.delete().where(t.post_tags.c.post_id == post_id))
            event = self.outbox.append(
                conn,
                topic=self.topic,
                aggregate_type="blog",
                aggregate_id=post_id,
                aggregate_version=version,
                event_type=POST_DELETED,
                record={
                    "event_id": self.outbox.new_event_id(),
                    "post_id": post_id,
                    "deleted_at": now,
                    "version": version,
                },
            )
            return CommandResult.of(event)

    def get(self, post_id: str) -> dict[str, Any] | None:
        """The post as the command side stores it (tests and the load generator use it)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(self.tables.posts).where(self.tables.posts.c.post_id == post_id)
            ).first()
            if row is None:
                return None
            return {**row._asdict(), "tags": self._tags(conn, post_id)}

    def _lock_live(self, conn: Connection, post_id: str, expected: int | None) -> Any:
        posts = self.tables.posts
        row = conn.execute(
            select(posts.c.version, posts.c.deleted_at)
            .where(posts.c.post_id == post_id)
            .with_for_update()
        ).first()
        if row is None:
            raise AggregateNotFound("post", post_id)
        if row.deleted_at is not None:
            raise AggregateNotFound("post", post_id, reason="was deleted")
        if expected is not None and expected != row.version:
            raise VersionConflict(post_id, expected=expected, current=row.version)
        return row

    def _tags(self, conn: Connection, post_id: str) -> list[str]:
        pt = self.tables.post_tags
        query = select(pt.c.tag).where(pt.c.post_id == post_id).order_by(pt.c.position)
        return list(conn.execute(query).scalars())

    def _emit_updated(self, conn: Connection, post_id: str, tags: list[str]) -> CommandResult:
        t = self.tables
        conn.execute(t.post_tags.delete().where(t.post_tags.c.post_id == post_id))
        if tags:
            conn.execute(
                t.post_tags.insert(),
                [{"post_id": post_id, "position": i, "tag": tag} for i, tag in enumerate(tags)],
            )
        post = conn.execute(select(t.posts).where(t.posts.c.post_id == post_id)).one()
        event = self.outbox.append(
            conn,
            topic=self.topic,
            aggregate_type="blog",
            aggregate_id=post_id,
            aggregate_version=post.version,
            event_type=POST_UPDATED,
            record={
                "event_id": self.outbox.new_event_id(),
                "post_id": post_id,
                "title": post.title,
                "description": post.description,
                "tags": tags,
                "author": post.author,
                "creation_date": as_utc(post.created_at),
                "updated_at": as_utc(post.updated_at),
                "version": post.version,
                "slug": post.slug,
            },
        )
        return CommandResult.of(event)
