"""``consume``: run a projection's active generation, and follow it across swaps.

A rebuild or rollback swaps the generation queries read; the runner's generation
control notices and stops (its snapshot says ``switched``), and :func:`run_live`
starts the generation that is active now, which continues from the checkpoints the
rebuild left.
"""

from __future__ import annotations

from collections.abc import Callable

from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.startup import retry_start
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.settings.concerns import DatabaseSettings
from consumers.settings.models import Settings
from projections import database_errors, make_engine
from projections.generations.versions import active_generation
from projections.registry import ProjectionRegistry

__all__ = ["resolve_generation", "run_live", "wait_for_generation"]


def resolve_generation(
    database: DatabaseSettings, projections: ProjectionRegistry, name: str
) -> int:
    """The generation queries read now (the code's version before any rebuild)."""
    default = projections.create(name).version
    engine = make_engine(database.url())
    try:
        with database_errors(), engine.connect() as conn:
            return active_generation(conn, name, default)
    finally:
        engine.dispose()


def wait_for_generation(
    settings: Settings,
    projections: ProjectionRegistry,
    name: str,
    *,
    stop: StopSignal,
    waiting: Callable[[str], None] | None = None,
) -> int | None:
    """:func:`resolve_generation`, retried like a failed batch while the database is away
    (unreachable at start, SQLite ``database is locked``); None when stopped meanwhile."""
    return retry_start(
        lambda: resolve_generation(settings.database, projections, name),
        what="reading the active generation",
        loop=settings.loop,
        stop=stop,
        waiting=waiting,
    )


def run_live(
    settings: Settings,
    name: str,
    *,
    stop: StopSignal,
    drain: bool = False,
    timeout_s: float | None = None,
    build: Callable[..., ProjectionRunner] | None = None,
    projections: ProjectionRegistry | None = None,
    on_batch: Callable[[RunnerSnapshot], None] | None = None,
    waiting: Callable[[str], None] | None = None,
) -> RunStats:
    """Run the active generation; after a swap or rollback, continue with the new one.

    ``on_batch`` sees every runner's snapshots (``consume --drain`` progress)."""
    from consumers.app import build_runner, projection_registry

    make = build or build_runner
    registry = projections or projection_registry(settings)
    total = RunStats()
    while True:
        generation = wait_for_generation(settings, registry, name, stop=stop, waiting=waiting)
        if generation is None:
            return total  # stopped while the database was away
        runner = make(
            settings,
            name,
            stop=stop,
            generation=generation,
            watch_generation=True,
            projections=registry,
            on_batch=on_batch,
        )
        stats = runner.drain(timeout_s=timeout_s) if drain else runner.run_forever()
        _add(total, stats)
        # per generation, so a test (or an operator) can see what was consumed after a swap
        ended = runner.snapshot()
        slot = ended.slot
        total.extra[f"consumed_{slot}"] = total.extra.get(f"consumed_{slot}", 0) + stats.consumed
        if not ended.switched or stop.is_set():
            return total


def _add(total: RunStats, more: RunStats) -> None:
    for field in RunStats.__dataclass_fields__:
        value = getattr(more, field)
        if field == "started_at":
            total.started_at = total.started_at or more.started_at
        elif field == "last_applied_at":
            total.last_applied_at = max(total.last_applied_at, more.last_applied_at)
        elif field == "extra":
            for key, n in more.extra.items():
                total.extra[key] = total.extra.get(key, 0) + n
        elif isinstance(value, int):
            setattr(total, field, getattr(total, field) + value)
