"""Active generation, atomic swap, drop, replay marks and status states on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from projections import BlogProjection, CheckpointStore, Move, make_engine
from projections.generations.heartbeats import HeartbeatStore
from projections.generations.replay_marks import ReplayMark, ReplayMarkStore
from projections.generations.status import read_status
from projections.generations.versions import VersionStore, active_generation
from schemas.errors import ConfigurationError


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _generation(engine: sa.Engine, generation: int, posts: int) -> BlogProjection:
    """A generation's tables holding ``posts`` rows (a distinguishable title per generation)."""
    projection = BlogProjection(generation=generation)
    with engine.begin() as conn:
        CheckpointStore().create(conn)
        projection.metadata.create_all(conn)
        conn.execute(
            projection.posts.insert(),
            [
                {"post_id": f"p{i}", "title": f"g{generation}", "tags": "[]", "version": 1}
                | {"last_event_id": "e"}
                for i in range(posts)
            ],
        )
    return projection


def _titles(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT title FROM posts")).scalars())


def test_swap_moves_pointer_and_views_together(engine: sa.Engine) -> None:
    """Queries read the active generation through views; a swap changes both in one step."""
    v1, v2 = _generation(engine, 1, 3), _generation(engine, 2, 5)
    store = VersionStore()
    with engine.begin() as conn:
        assert active_generation(conn, "blog", 1) == 1  # before any version row exists
        store.ensure(conn, v1)
    assert _titles(engine) == {"g1"}
    with engine.begin() as conn:
        row = store.swap(conn, v2)
    assert (row.active_generation, row.previous_generation) == (2, 1)
    assert _titles(engine) == {"g2"}
    with engine.connect() as conn:
        assert active_generation(conn, "blog", 1) == 2
        assert conn.execute(sa.text("SELECT COUNT(*) FROM tag_cloud")).scalar_one() == 0


def test_failed_swap_leaves_the_old_generation_serving(engine: sa.Engine) -> None:
    """A swap whose transaction fails changes neither the pointer nor the views."""
    v1, v2 = _generation(engine, 1, 3), _generation(engine, 2, 5)
    store = VersionStore()
    with engine.begin() as conn:
        store.ensure(conn, v1)

    def swap_then_crash() -> None:
        with engine.begin() as conn:
            store.swap(conn, v2)
            raise RuntimeError("crash after the swap statements")

    with pytest.raises(RuntimeError, match="crash"):
        swap_then_crash()
    assert _titles(engine) == {"g1"}
    with engine.connect() as conn:
        assert store.read(conn, "blog").active_generation == 1


def test_drop_generation_refuses_the_active_one(engine: sa.Engine) -> None:
    """Dropping removes a replaced generation's tables and checkpoints, never the active one."""
    v1, v2 = _generation(engine, 1, 1), _generation(engine, 2, 1)
    store = VersionStore()
    with engine.begin() as conn:
        store.ensure(conn, v1)
        CheckpointStore().advance(conn, v1.slot, {("t", 0): Move(None, 4)})
        store.swap(conn, v2)
    with pytest.raises(ConfigurationError, match="active generation"), engine.begin() as conn:
        store.drop_generation(conn, v2)
    with engine.begin() as conn:
        store.drop_generation(conn, v1)
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("posts_v1")
        assert CheckpointStore().load(conn, v1.slot) == {}
        assert store.read(conn, "blog").previous_generation is None
    assert _titles(engine) == {"g2"}


def test_replay_marks_keep_the_highest_offset(engine: sa.Engine) -> None:
    """A second replay before the first finished must not forget how far events had got."""
    store = VersionStore()
    with engine.begin() as conn:
        store.create(conn)
        ReplayMarkStore().set(conn, "blog_v1", {("t", 0): ReplayMark(100), ("t", 1): ReplayMark(7)})
        ReplayMarkStore().set(conn, "blog_v1", {("t", 0): ReplayMark(60, skip_from=50)})
    with engine.connect() as conn:
        marks = ReplayMarkStore().load(conn, "blog_v1")
    assert marks == {("t", 0): ReplayMark(100, 50), ("t", 1): ReplayMark(7)}
    assert marks[("t", 0)].replays(100)
    assert not marks[("t", 0)].replays(101)
    assert marks[("t", 0)].skips(50)
    assert not marks[("t", 0)].skips(49)


def test_status_states_follow_heartbeats(engine: sa.Engine) -> None:
    """Fresh heartbeats make a generation live or rebuilding; stale or none mean stopped."""
    v1 = _generation(engine, 1, 1)
    store = VersionStore()
    with engine.begin() as conn:
        store.ensure(conn, v1)
        store.begin_rebuild(conn, "blog", 2)
        HeartbeatStore().beat(conn, "blog_v1", "pod-a", "live")
        HeartbeatStore().beat(conn, "blog_v2", "rebuild-1", "rebuilding")
        CheckpointStore().advance(conn, "blog_v1", {("t", 0): Move(None, 9)})
    with engine.connect() as conn:
        status = read_status(conn, "blog", 1)
    states = {(g.generation, g.role): (g.state, g.instances) for g in status.generations}
    assert states == {
        (1, "active"): ("live", ["pod-a"]),
        (2, "rebuilding"): ("rebuilding", ["rebuild-1"]),
    }
    assert status.generations[0].checkpoints[("t", 0)][0] == 9
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE projection_heartbeats SET seen_at = :t"), {"t": "2000-01-01"})
    with engine.connect() as conn:
        assert {g.state for g in read_status(conn, "blog", 1).generations} == {"stopped"}
