"""Rebuild refuses a truncated topic, driven through the watermark source.

The embedded broker cannot truncate a topic (``delete_records`` is unimplemented), so
these tests hand the rebuild a watermark source whose low watermarks are above zero:
the same seam the Kafka-backed source fills from fetch responses.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from consumers.cli import main
from consumers.cli import rebuild as cli_rebuild
from consumers.kafka.watermarks import Watermarks
from consumers.operations.rebuild import HistoryIncomplete, run_rebuild
from consumers.settings.models import Settings
from projections import TopicPartition

TOPIC = "blog.posts"


class TruncatedSource:
    """Partition 2 lost its first 120 events and partition 3 its first 7 to retention."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def watermarks(self, topics: Iterable[str]) -> dict[TopicPartition, Watermarks]:
        lows = {0: 0, 1: 0, 2: 120, 3: 7}
        return {(t, p): Watermarks(low, 500) for t in topics for p, low in lows.items()}


def test_rebuild_refuses_when_history_is_gone(db_url: str) -> None:
    """The refusal names each truncated partition and its low watermark; nothing is created."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", database_url=db_url)
    with pytest.raises(HistoryIncomplete) as refused:
        run_rebuild(settings, "blog", watermarks=TruncatedSource())
    message = str(refused.value)
    assert f"{TOPIC}[2] starts at offset 120" in message
    assert f"{TOPIC}[3] starts at offset 7" in message
    assert f"{TOPIC}[0]" not in message
    assert "--allow-partial" in message
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("posts_v2")
            row = conn.execute(
                sa.text("SELECT active_generation, rebuilding_generation FROM projection_versions")
            ).one()
        assert tuple(row) == (1, None)
    finally:
        engine.dispose()


@pytest.fixture
def _restore_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("_restore_signals")
def test_cli_refusal_exits_3_with_one_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`projectionist rebuild` on a truncated topic exits 3 with the partitions, no traceback."""
    monkeypatch.setattr(cli_rebuild, "FetchedWatermarks", TruncatedSource)
    monkeypatch.setattr(cli_rebuild, "require_broker", lambda settings: None)  # no broker here
    monkeypatch.setattr(
        "sys.argv", ["projectionist", "rebuild", "blog", "-b", "127.0.0.1:1", "-d", sqlite_url]
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert "blog.posts[2] starts at offset 120" in err
    assert "Traceback" not in err
