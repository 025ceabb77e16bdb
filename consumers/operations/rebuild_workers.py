"""A rebuild's drain split over worker processes, each owning some of the partitions.

Python decodes and folds on one core; a rebuild has a whole history to read and no
group to join (manual assignment), so ``projectionist rebuild --workers N`` gives each of
N processes its share of the partitions. This is the live scale-out's correctness
argument, unchanged: a key lives on one partition, so workers never write the same
rows, and shared rows (the tag cloud, order totals) are locked in sorted order and
retried on a deadlock. Checkpoints are per partition, in each worker's own
transactions, so a worker's batch is exactly-once exactly as the single runner's is.

Workers are *spawned* (not forked): the parent holds librdkafka and progress-display
threads, which a fork would copy half-way. The parent forwards SIGTERM, gathers every
worker's batches into one snapshot for the progress bar and the metrics, and swaps only
when every worker has drained its partitions; a worker that fails or dies stops the
others and nothing is swapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os
import pickle
import queue
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing import get_context
from typing import Any

import structlog

from consumers.app import build_runner, projection_registry
from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.settings.models import Settings
from projections import TopicPartition
from projections.registry import ProjectionRegistry
from schemas.errors import ProjectionistError

__all__ = [
    "Drained",
    "WorkerFailed",
    "drain_in_workers",
    "merged_stats",
    "rebuild_runner",
    "share_partitions",
]

_PR_SET_PDEATHSIG = 1
_STOPS = {signal.SIGINT, signal.SIGTERM}

#: a worker's process ended without a last word for this long: it died (killed, OOM)
DEAD_AFTER_S = 2.0


class WorkerFailed(ProjectionistError):
    """A rebuild worker died without reporting (killed, out of memory), or failed with an
    error the parent cannot be handed (its traceback is in the worker's log)."""


@dataclasses.dataclass(slots=True)
class Drained:
    """What the workers did together: the runner's ``drain`` result, merged."""

    stats: RunStats
    positions: dict[TopicPartition, int | None]
    stopped: bool


def rebuild_runner(
    settings: Settings,
    name: str,
    generation: int,
    assignment: list[TopicPartition],
    *,
    batch_max_messages: int,
    stop: StopSignal | None,
    on_batch: Callable[[RunnerSnapshot], None] | None,
    projections: ProjectionRegistry,
) -> ProjectionRunner:
    """The runner of a rebuild (or of one worker's share): manual assignment, side
    effects silent (``live=False``), following swaps and replays while it runs."""
    return build_runner(
        settings,
        name,
        stop=stop,
        on_batch=on_batch,
        generation=generation,
        assignment=assignment,
        watch_generation=True,
        live=False,
        batch_max_messages=batch_max_messages,
        projections=projections,
    )


def share_partitions(
    backlog: dict[TopicPartition, int], workers: int
) -> list[list[TopicPartition]]:
    """Partitions over at most ``workers`` shares, the largest backlogs first to the
    share with the least so far (balanced by events, not by partition count)."""
    n = max(1, min(workers, len(backlog)))
    shares: list[list[TopicPartition]] = [[] for _ in range(n)]
    load = [0] * n
    for tp in sorted(backlog, key=lambda tp: (-backlog[tp], tp)):
        i = load.index(min(load))
        shares[i].append(tp)
        load[i] += backlog[tp]
    return [sorted(s) for s in shares]


def merged_stats(parts: Sequence[RunStats]) -> RunStats:
    total = RunStats()
    for f in dataclasses.fields(RunStats):
        values = [getattr(p, f.name) for p in parts]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            setattr(total, f.name, sum(values))
    return total


def drain_in_workers(
    settings: Settings,
    name: str,
    *,
    generation: int,
    shares: list[list[TopicPartition]],
    batch_max_messages: int,
    stop: StopSignal,
    on_batch: Callable[[RunnerSnapshot], None] | None,
    setup: Callable[[Settings], None] | None = None,
) -> Drained:
    """Run one runner per share in its own process until all have drained (or stopped).

    Each worker builds its projections from ``settings`` (the shipped ones, entry points,
    ``PROJECTIONIST_PROJECTIONS``, table files), as every ``projectionist`` process does.
    ``setup`` (a module-level function: it is pickled by name) runs first in each worker,
    e.g. the command line's logging configuration.

    Raises the first worker's error (after stopping the others) or :class:`WorkerFailed`.
    """
    ctx = get_context("spawn")
    events: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(i, settings, name, generation, share, batch_max_messages, setup, events),
            name=f"projectionist-rebuild-{i}",
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    gather = _Gather(procs, [tp for s in shares for tp in s], on_batch)
    # Ctrl-C reaches every process of the terminal's group, and a stop is forwarded as
    # SIGTERM: a worker still importing would die of either (a traceback, or no last
    # word). Workers start with both *blocked* (the mask is kept across fork and exec):
    # one that comes early waits for the worker's own handler, then stops it as usual.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        for p in procs:
            p.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        forwarded = False
        while not gather.all_finished():
            if (stop.is_set() or gather.failure is not None) and not forwarded:
                gather.stop_the_rest()
                forwarded = True
            try:
                message = events.get(timeout=0.2)
            except queue.Empty:
                gather.notice_the_dead()
                continue
            gather.take(*message)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        events.close()
    if gather.failure is not None:
        raise gather.failure
    stopped = any(gather.finished.values()) or stop.is_set()
    return Drained(merged_stats(gather.books), gather.positions, stopped)


class _Gather:
    """The parent's view of its workers, from the messages they send."""

    def __init__(
        self,
        procs: list[Any],
        partitions: list[TopicPartition],
        on_batch: Callable[[RunnerSnapshot], None] | None,
    ) -> None:
        self.procs = procs
        self.on_batch = on_batch
        self.positions: dict[TopicPartition, int | None] = dict.fromkeys(partitions)
        self.books = [RunStats() for _ in procs]
        #: worker -> it stopped before it had drained (a signal, a failure)
        self.finished: dict[int, bool] = {}
        self.failure: BaseException | None = None
        self._silent_since: dict[int, float] = {}

    def all_finished(self) -> bool:
        return len(self.finished) == len(self.procs)

    def stop_the_rest(self) -> None:
        for i, p in enumerate(self.procs):
            if i not in self.finished and p.is_alive():
                p.terminate()  # SIGTERM: the worker ends its batch and stops

    def take(self, kind: str, i: int, *payload: Any) -> None:
        if kind == "error":
            self.finished[i] = True
            self.failure = self.failure or payload[0]
            return
        slot, positions, self.books[i] = payload[0], payload[1], payload[2]
        self.positions.update(positions)
        if kind == "done":
            self.finished[i] = payload[3]
        if self.on_batch is not None:
            books = merged_stats(self.books)
            self.on_batch(RunnerSnapshot(slot=slot, positions=dict(self.positions), stats=books))

    def notice_the_dead(self) -> None:
        """A worker gone without a last word (its last message may still be in flight)."""
        now = time.monotonic()
        for i, p in enumerate(self.procs):
            if i in self.finished or p.is_alive():
                continue
            if now - self._silent_since.setdefault(i, now) > DEAD_AFTER_S:
                self.finished[i] = True
                self.failure = self.failure or WorkerFailed(
                    f"rebuild worker {i} ended without a word (exit code {p.exitcode}); "
                    "nothing was swapped"
                )


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the trip to the parent (the queue pickles in a thread of
    its own, where a failure would only be printed), else its message."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:  # noqa: BLE001 - any exception class may refuse pickling
        return WorkerFailed(f"a rebuild worker failed: {type(exc).__name__}: {exc}")
    return exc


def _stop_with_parent(stop: StopSignal) -> None:
    """SIGTERM this worker when the parent dies (Linux ``PR_SET_PDEATHSIG``): a killed
    rebuild must not leave workers draining into a generation nobody will swap in."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's terminate() still applies
        return
    if os.getppid() != parent:  # it died before prctl took effect
        stop.set()


def _worker(
    index: int,
    settings: Settings,
    name: str,
    generation: int,
    share: list[TopicPartition],
    batch_max_messages: int,
    setup: Callable[[Settings], None] | None,
    events: Any,
) -> None:
    stop = StopSignal()
    stop.install()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # see drain_in_workers
    _stop_with_parent(stop)
    try:
        if setup is not None:
            setup(settings)

        def on_batch(snapshot: RunnerSnapshot) -> None:
            events.put(("batch", index, snapshot.slot, dict(snapshot.positions), snapshot.stats))

        runner = rebuild_runner(
            settings,
            name,
            generation,
            share,
            batch_max_messages=batch_max_messages,
            stop=stop,
            on_batch=on_batch,
            projections=projection_registry(settings),
        )
        stats = runner.drain()
        snap = runner.snapshot()
        events.put(("done", index, snap.slot, dict(snap.positions), stats, stop.is_set()))
    except BaseException as exc:  # noqa: BLE001 - every failure is the parent's to report
        if not isinstance(exc, ProjectionistError):
            structlog.get_logger(__name__).exception("rebuild worker failed", worker=index)
        events.put(("error", index, _portable(exc)))
    finally:
        events.close()
        events.join_thread()
