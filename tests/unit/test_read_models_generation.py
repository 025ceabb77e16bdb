"""The query side reads the active generation of each projection, not the code's version."""

from __future__ import annotations

from pydantic import SecretStr

from consumers.app import build_read_models
from consumers.settings.concerns import TopicSettings
from consumers.settings.models import Settings
from projections import BlogProjection, make_engine
from projections.generations.versions import VersionStore


def test_read_models_follow_the_active_generation(db_url: str) -> None:
    """After a swap to generation 2, the API's reads use the *_v2 tables."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            second = BlogProjection(generation=2)
            second.metadata.create_all(conn)
            VersionStore().ensure(conn, second)
    finally:
        engine.dispose()
    reads = build_read_models(
        Settings(database_url=SecretStr(db_url)).database, TopicSettings(), read_only=True
    )
    try:
        active = reads.active()
        assert active.blog.posts.name == "posts_v2"
        assert active.orders.generation == 1  # never rebuilt: the code's version
    finally:
        reads.engine.dispose()


def test_a_running_api_follows_a_swap(db_url: str) -> None:
    """Reads built before a rebuild's swap answer from the new generation after it."""
    engine = make_engine(db_url)
    first, second = BlogProjection(generation=1), BlogProjection(generation=2)
    try:
        with engine.begin() as conn:
            first.metadata.create_all(conn)
            VersionStore().ensure(conn, first)
            conn.execute(first.tag_cloud.insert().values(tag="old", posts_count=1))
        reads = build_read_models(
            Settings(database_url=SecretStr(db_url)).database,
            TopicSettings(),
            read_only=True,
        )
        assert reads.tags(10) == [{"tag": "old", "posts_count": 1}]
        with engine.begin() as conn:
            second.metadata.create_all(conn)
            conn.execute(second.tag_cloud.insert().values(tag="new", posts_count=2))
            VersionStore().swap(conn, second)
        assert reads.tags(10) == [{"tag": "new", "posts_count": 2}]
        reads.engine.dispose()
    finally:
        engine.dispose()
