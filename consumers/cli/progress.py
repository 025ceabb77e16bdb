"""What ``consume --drain`` shows on a terminal: the group join, then events/s and lag left.

Fed by the runner's ``on_batch`` hook (a :class:`RunnerSnapshot` after every poll), so it
never touches the Kafka client; drawn on stderr only when stderr is a terminal, so
pipes, logs and ``--json`` output stay clean.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from consumers.runtime.snapshot import RunnerSnapshot

__all__ = ["DrainProgress"]


class DrainProgress:
    """A live line per drain: "joining …", then consumed of consumed + lag, ev/s, lag left."""

    def __init__(self, projection: str, *, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal
        self._projection = projection
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[lag]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._task = self._progress.add_task(
            f"{projection}: joining the consumer group", total=None, rate="", lag=""
        )
        self._joined_at: float | None = None
        self._consumed_at_join = 0

    def __enter__(self) -> DrainProgress:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._progress.stop()

    def __call__(self, snapshot: RunnerSnapshot) -> None:
        if not self.enabled or not snapshot.positions:
            return  # not joined yet (or between two generations): the join line stays
        consumed = snapshot.stats.consumed
        if self._joined_at is None:
            self._joined_at = time.monotonic()
            self._consumed_at_join = consumed
        known = [n for n in snapshot.lag.values() if n >= 0]
        lag = sum(known)
        seconds = max(1e-9, time.monotonic() - self._joined_at)
        rate = (consumed - self._consumed_at_join) / seconds
        paused = " (paused by an operator)" if snapshot.paused else ""
        self._progress.update(
            self._task,
            description=f"{self._projection}: draining {len(snapshot.positions)} partitions"
            + paused,
            completed=consumed,
            total=consumed + lag if known else None,
            rate=f"{rate:,.0f} ev/s",
            lag=f"lag {lag:,}" if known else "lag ?",
        )
