"""Data-loss detection: a stored checkpoint the partition can no longer explain.

Two ways history goes missing under a projection: the topic was recreated (its high
watermark is now *below* our checkpoint) or retention deleted events we never
projected (its low watermark is now *above* checkpoint + 1). Kafka reports the second
as an out-of-range fetch (``auto.offset.reset=error`` turns it into an error); some
brokers answer the first with an empty fetch. :class:`HistoryGuard` therefore also
compares each owned partition's checkpoint with the watermarks of fetch responses.

Cached watermarks may predate the current assignment (a partition owned before,
then owned by another consumer that advanced it), so a mismatch must persist for
``grace_s`` of fresh fetches before the guard fires: a real loss persists forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from projections import TopicPartition
from schemas.errors import DataLossError

__all__ = ["HistoryGuard", "data_loss_error"]

Watermarks = Callable[[TopicPartition], tuple[int, int]]


def data_loss_error(slot: str, tp: TopicPartition, detail: str) -> DataLossError:
    topic, partition = tp
    return DataLossError(
        f"{slot}: {topic}[{partition}] {detail}. The topic was recreated or retention "
        "deleted history this projection never applied; continuing would silently skip or "
        "re-project events. Rebuild the projection from the topic (projectionist rebuild) "
        "or, if this is intended, reset its checkpoints for this topic deliberately."
    )


def mismatch(last: int | None, low: int, high: int) -> str | None:
    """Why checkpoint ``last`` cannot be right for watermarks ``[low, high)``; None if fine."""
    if last is None or high < 0:
        return None  # nothing applied yet, or no fetch response yet
    if last + 1 > high:
        return f"holds offsets up to {high - 1} but the stored checkpoint is {last}"
    if low > last + 1:
        return f"starts at offset {low} but the next offset to apply is {last + 1}"
    return None


class HistoryGuard:
    """Raises :class:`DataLossError` once a checkpoint/watermark mismatch has persisted."""

    def __init__(self, slot: str, *, grace_s: float = 5.0) -> None:
        self.slot = slot
        self.grace_s = grace_s
        self._since: dict[TopicPartition, float] = {}

    def forget(self) -> None:
        """After a rebalance or a seek: cached watermarks must prove themselves again."""
        self._since.clear()

    def check(self, positions: Mapping[TopicPartition, int | None], watermarks: Watermarks) -> None:
        now = time.monotonic()
        for tp, last in positions.items():
            low, high = watermarks(tp)
            why = mismatch(last, low, high)
            if why is None:
                self._since.pop(tp, None)
                continue
            first = self._since.setdefault(tp, now)
            if now - first >= self.grace_s:
                raise data_loss_error(self.slot, tp, why)

    def suspects(self, tp: TopicPartition) -> bool:
        return tp in self._since
