"""The outbox relay's claim, ordering and retry logic, with a stand-in publisher (no broker)."""

from __future__ import annotations

from typing import Any

from producers import OutboxRelay, PublishError, PublishFailure, RelaySettings
from projections import database_errors
from tests.support.commands import command_side, unpublished


class FlakyPublisher:
    """Records what would be published; ``flush`` fails the first ``failures`` times."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.pending: list[tuple[str, str]] = []
        self.acked: list[tuple[str, str]] = []
        self.resets = 0

    def publish_raw(
        self, topic: str, value: bytes | None, *, key: str, event_id: str, **_: Any
    ) -> None:
        self.pending.append((key, event_id))

    def reset(self) -> None:
        self.resets += 1
        self.pending = []

    def flush(self, timeout_s: float = 60.0) -> None:
        batch, self.pending = self.pending, []
        if self.failures:
            self.failures -= 1
            raise PublishError([PublishFailure("t", batch[0][0], batch[0][1], "broker away")])
        self.acked.extend(batch)


def test_broker_outage_rolls_back_the_round_and_retries(sqlite_url: str) -> None:
    """While flush fails nothing is marked; after the outage every row is acked, in order."""
    with command_side(sqlite_url) as cs:
        ids = [cs.blog.create(title=f"p{i}", author="a").aggregate_id for i in range(5)]
        for post_id in ids:
            cs.blog.update(post_id, title="edited")
        publisher = FlakyPublisher(failures=2)
        relay = OutboxRelay(
            cs.engine,
            publisher=publisher,
            database_errors=database_errors,
            tables=cs.tables,  # type: ignore[arg-type]
            settings=RelaySettings(batch_size=4, retry_initial_s=0.01, retry_max_s=0.02),
        )
        stats = relay.drain(timeout_s=30)
    assert stats.retries == 2
    assert publisher.resets == 2, "a failed round must start over on a fresh producer"
    assert stats.published == 10
    assert unpublished(sqlite_url) == 0
    assert len(publisher.acked) == 10
    order = [key for key, _ in publisher.acked]
    for post_id in ids:
        assert order.count(post_id) == 2


def test_replicas_never_overtake_each_other_on_one_aggregate(pg_url: str) -> None:
    """While replica A holds a post's v1, replica B skips that post's v2 (SKIP LOCKED + prefix
    check) but still takes other posts' rows."""
    with command_side(pg_url) as cs:
        first = cs.blog.create(title="x", author="a").aggregate_id
        cs.blog.update(first, title="x2")
        other = cs.blog.create(title="y", author="a").aggregate_id
        a = OutboxRelay(
            cs.engine,
            publisher=FlakyPublisher(),
            database_errors=database_errors,
            tables=cs.tables,  # type: ignore[arg-type]
            settings=RelaySettings(batch_size=1),
        )
        b = OutboxRelay(
            cs.engine,
            publisher=FlakyPublisher(),
            database_errors=database_errors,
            tables=cs.tables,  # type: ignore[arg-type]
            settings=RelaySettings(batch_size=10),
        )
        with cs.engine.begin() as conn_a:
            held = a._claim(conn_a)
            assert [(r["aggregate_id"], r["aggregate_version"]) for r in held] == [(first, 1)]
            with cs.engine.begin() as conn_b:
                taken = b._claim(conn_b)
            assert [(r["aggregate_id"], r["aggregate_version"]) for r in taken] == [(other, 1)]
            assert b.stats.deferred == 1
