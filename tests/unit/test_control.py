"""The control row as a running consumer sees it: swaps hand over, replays re-seek (no broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from consumers.runtime.control import GenerationControl
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.stats import RunStats
from projections import BlogProjection, CheckpointStore, make_engine
from projections.generations.heartbeats import HeartbeatStore
from projections.generations.replay_marks import ReplayMark, ReplayMarkStore
from projections.generations.versions import VersionStore
from schemas import AvroSerde, SchemaCatalog
from tests.support.fakes import ListSink


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _processor(engine: sa.Engine, generation: int) -> BatchProcessor:
    proc = BatchProcessor(
        engine=engine,
        projection=BlogProjection(generation=generation),
        serde=AvroSerde(SchemaCatalog.load()),
        checkpoints=CheckpointStore(),
        dead_letters=ListSink(),
        stats=RunStats(),
    )
    proc.ensure_schema()
    return proc


def _check(control: GenerationControl, owned: list[tuple[str, int]] | None = None) -> str | None:
    control._next_check = 0.0  # each call is a new check, whatever the interval
    return control.check(owned or [])


def test_swap_hands_over_and_replay_reseeks(engine: sa.Engine) -> None:
    """A live runner re-seeks when the epoch moves and stops when another generation is active."""
    v1, v2 = _processor(engine, 1), _processor(engine, 2)
    control = GenerationControl(v1, instance="pod-a")
    assert _check(control) is None  # first check: row and views created, heartbeat written
    store = VersionStore()
    with engine.connect() as conn:
        assert HeartbeatStore().instances(conn, "blog_v1", fresh_s=60) == {"pod-a": "live"}
        assert conn.execute(sa.text("SELECT COUNT(*) FROM posts")).scalar_one() == 0
    with engine.begin() as conn:
        ReplayMarkStore().set(conn, "blog_v1", {("blog.posts", 0): ReplayMark(41)})
        store.bump_epoch(conn, "blog")
    assert _check(control) == "reseek"
    assert v1.replay_marks == {("blog.posts", 0): ReplayMark(41)}
    assert _check(control) is None  # the same epoch again: nothing to do
    with engine.begin() as conn:
        store.swap(conn, v2.projection)
    assert _check(control) == "switch"
    control.close()
    with engine.connect() as conn:
        assert HeartbeatStore().instances(conn, "blog_v1", fresh_s=60) == {}


def test_rebuild_control_never_switches(engine: sa.Engine) -> None:
    """The rebuild's runner writes a generation that is not active yet: it must keep going."""
    v1, v2 = _processor(engine, 1), _processor(engine, 2)
    assert _check(GenerationControl(v1, instance="live")) is None
    rebuild = GenerationControl(v2, live=False, instance="rebuild")
    assert _check(rebuild) is None
    with engine.connect() as conn:
        assert HeartbeatStore().instances(conn, "blog_v2", fresh_s=60) == {"rebuild": "rebuilding"}
    rebuild.close()


def test_pause_and_resume_reach_a_live_runner_and_status(engine: sa.Engine) -> None:
    """A pause row makes the live control answer "pause" once, beat "paused" and record its
    partitions; resume answers "resume"; a rebuild's control never pauses."""
    from projections.generations.pauses import PauseStore
    from projections.generations.status import read_status

    v1, v2 = _processor(engine, 1), _processor(engine, 2)
    owned = [("blog.posts", 0), ("blog.posts", 2)]
    control = GenerationControl(v1, instance="pod-a")
    rebuild = GenerationControl(v2, live=False, instance="rebuild")
    assert _check(control) is None
    with engine.begin() as conn:
        row = PauseStore().pause(conn, "blog", by="ops@host", reason="db migration")
        again = PauseStore().pause(conn, "blog", by="someone-else")
    assert again == row, "pausing twice keeps the first pause"
    assert _check(rebuild) is None
    assert _check(control, owned) == "pause"
    assert _check(control, owned) is None  # still paused: nothing new to do
    with engine.connect() as conn:
        hb = HeartbeatStore()
        assert hb.instances(conn, "blog_v1", fresh_s=60) == {"pod-a": "paused"}
        assert hb.owners(conn, "blog_v1", fresh_s=60) == dict.fromkeys(owned, "pod-a")
        status = read_status(conn, "blog", 1)
    assert status.pause is not None
    assert status.pause.reason == "db migration"
    assert status.generations[0].state == "paused"
    assert status.generations[0].owners == dict.fromkeys(owned, "pod-a")
    with engine.begin() as conn:
        assert PauseStore().resume(conn, "blog") == row
        assert PauseStore().resume(conn, "blog") is None
    assert _check(control, owned[:1]) == "resume"
    with engine.connect() as conn:
        assert HeartbeatStore().instances(conn, "blog_v1", fresh_s=60) == {"pod-a": "live"}
        assert HeartbeatStore().owners(conn, "blog_v1", fresh_s=60) == {owned[0]: "pod-a"}
    control.close()
    rebuild.close()
    with engine.connect() as conn:
        assert HeartbeatStore().owners(conn, "blog_v1", fresh_s=60) == {}


def test_a_wedged_runner_shows_in_status(engine: sa.Engine) -> None:
    """The heartbeat of a runner its group holds without partitions says wedged, and so
    does status; once assigned again it is live."""
    from projections.generations.status import read_status

    control = GenerationControl(_processor(engine, 1), instance="pod-a", heartbeat_s=0)
    control._next_check = 0.0
    control.check(wedged=True)
    with engine.connect() as conn:
        assert read_status(conn, "blog", 1).generations[0].state == "wedged"
    control._next_check = 0.0
    control.check(wedged=False)
    with engine.connect() as conn:
        assert read_status(conn, "blog", 1).generations[0].state == "live"
