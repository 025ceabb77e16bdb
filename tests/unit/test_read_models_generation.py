"""The query side reads the active generation of each projection, not the code's version."""

from __future__ import annotations

from pydantic import SecretStr

from consumers.app import build_read_models
from consumers.settings.models import Settings, TopicSettings
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
