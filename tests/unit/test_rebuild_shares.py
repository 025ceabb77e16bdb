"""How ``rebuild --workers N`` shares the partitions, and how their books add up."""

from __future__ import annotations

from consumers.operations.rebuild_workers import merged_stats, share_partitions
from consumers.runtime.stats import RunStats


def test_shares_balance_events_not_partition_counts() -> None:
    backlog = {("t", 0): 900, ("t", 1): 100, ("t", 2): 400, ("t", 3): 400}
    shares = share_partitions(backlog, 2)
    assert sorted(map(sorted, shares)) == [[("t", 0)], [("t", 1), ("t", 2), ("t", 3)]]
    assert sorted(tp for s in shares for tp in s) == sorted(backlog)


def test_no_more_workers_than_partitions_and_at_least_one() -> None:
    backlog = {("a", 0): 5, ("b", 0): 5, ("a", 1): 0}
    assert len(share_partitions(backlog, 8)) == 3
    assert share_partitions(backlog, 1) == [sorted(backlog)]
    assert share_partitions({}, 4) == [[]]


def test_books_add_up() -> None:
    one = RunStats(consumed=10, applied=7, stale=2, dead_lettered=1, batches=3)
    two = RunStats(consumed=5, applied=5, batches=1)
    total = merged_stats([one, two])
    assert (total.consumed, total.applied, total.stale, total.dead_lettered, total.batches) == (
        15,
        12,
        2,
        1,
        4,
    )
