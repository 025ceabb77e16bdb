"""Operator commands for versions of projections: rebuild, rollback, cleanup, replay, status.

Registered on ``consumers.cli.app`` by the import at the bottom of that module.
"""

from __future__ import annotations

import json
import time
from contextlib import closing
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from consumers.cli.options import (
    BootstrapOpt,
    DatabaseOpt,
    JsonOpt,
    ProjectionArg,
    command_settings,
    console,
    process_logging,
    require_broker,
)
from consumers.kafka.config import client_config
from consumers.kafka.watermarks import FetchedWatermarks, Watermarks
from consumers.observability.exporter import Observability
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stop import StopSignal
from projections import TopicPartition

__all__ = ["cleanup", "migrate", "rebuild", "rollback"]


def migrate(database_url: DatabaseOpt = None, json_out: JsonOpt = False) -> None:
    """Create every projection's tables (generation 1 on a fresh database) with the owner role.

    The schema step of a deployment (a Job before the consumers, whose DML-only role may
    not create tables). Idempotent: run it on every release.
    """
    from consumers.app import projection_registry
    from consumers.operations.migrate import run_migrate

    settings = command_settings(database_url=database_url)
    done = run_migrate(settings, projection_registry(settings))
    if json_out:
        print(json.dumps({"migrated": {m.projection: m.generation for m in done}}))
        return
    for m in done:
        console.print(f"{m.projection}: generation {m.generation} ready")


def rebuild(
    projection: ProjectionArg,
    allow_partial: Annotated[
        bool,
        typer.Option(help="rebuild even when a topic no longer holds its whole history"),
    ] = False,
    drop_previous: Annotated[
        bool, typer.Option(help="after the swap, drop the generation it replaced")
    ] = False,
    batch_max_messages: Annotated[
        int, typer.Option(min=1, help="messages per batch (transaction) while rebuilding")
    ] = 10_000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="processes that drain the partitions side by side (at most one per "
            "partition); each needs a core and its own memory",
        ),
    ] = 1,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Build the next generation from the beginning of the topics, then swap it in atomically.

    The active generation keeps serving queries (and its consumers keep running) until the
    swap; running consumers then continue the new generation. The previous generation is
    kept for `projectionist rollback` until `--drop-previous` or `projectionist cleanup`.
    """
    from consumers.app import projection_registry
    from consumers.operations.rebuild import run_rebuild

    settings = command_settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    registry = projection_registry(settings)
    registry.create(projection)  # an unknown name fails before the progress display
    require_broker(settings)
    stop = StopSignal()
    stop.install()
    out = Console(stderr=True) if json_out else console
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[partitions]}"),
        console=out,
        transient=False,
    )
    state: dict[str, Any] = {"done": -1}
    # /metrics on PROJECTIONIST_METRICS_ADDRESS: the rebuild's progress and when it last
    # advanced (ProjectionistRebuildStuck), scraped from the Job's pod.
    obs = Observability(settings.observability)

    def on_start(marks: dict[TopicPartition, Watermarks]) -> None:
        state["marks"] = marks
        state["t0"] = time.monotonic()
        total = sum(m.high - m.low for m in marks.values())
        state["total"] = total
        state["task"] = progress.add_task(
            f"rebuilding {projection}", total=total, rate="", partitions=""
        )

    def on_batch(snapshot: RunnerSnapshot) -> None:
        marks: dict[TopicPartition, Watermarks] = state["marks"]
        done, parts = 0, []
        for tp, last in sorted(snapshot.positions.items()):
            at = last + 1 if last is not None else marks[tp].low
            done += at - marks[tp].low
            parts.append(f"{tp[1]}:{at}/{marks[tp].high}")
        rate = snapshot.stats.consumed / max(1e-9, time.monotonic() - state["t0"])
        progress.update(
            state["task"], completed=done, rate=f"{rate:,.0f} ev/s", partitions=" ".join(parts)
        )
        if done != state["done"]:  # only progress moves "last advanced"
            state["done"], state["slot"] = done, snapshot.slot
            obs.metrics.rebuild_advanced(
                snapshot.slot, done=done, total=state["total"], now=time.time()
            )

    obs.start()
    with progress, closing(obs):
        result = run_rebuild(
            settings,
            projection,
            watermarks=FetchedWatermarks(client_config(settings.kafka)),
            allow_partial=allow_partial,
            drop_previous=drop_previous,
            batch_max_messages=batch_max_messages,
            workers=workers,
            stop=stop,
            on_start=on_start,
            on_batch=on_batch,
            projections=registry,
            worker_setup=process_logging,  # pickled by name: a module-level function
        )
        if result.swapped and "slot" in state:
            obs.metrics.rebuild_finished(state["slot"])
    if json_out:
        print(json.dumps(result.as_dict()))
    if not result.swapped:
        out.print(
            f"[yellow]interrupted[/]: {projection} still reads generation "
            f"{result.previous_generation}; nothing was swapped"
        )
        raise typer.Exit(130)
    kept = (
        "dropped"
        if result.dropped_previous
        else f"kept (projectionist rollback {projection} / cleanup {projection})"
    )
    out.print(
        f"{projection}: generation {result.previous_generation} → {result.generation}: "
        f"{result.events:,} events in {result.seconds:.1f} s ({result.events_per_s:,.0f} ev/s); "
        f"queries now read {projection}_v{result.generation}; "
        f"generation {result.previous_generation} {kept}"
    )


def rollback(
    projection: ProjectionArg,
    database_url: DatabaseOpt = None,
) -> None:
    """Swap back to the previous generation (its rows are as they were at the swap)."""
    from consumers.app import projection_registry
    from consumers.operations.rebuild import run_rollback

    settings = command_settings(database_url=database_url)
    before, after = run_rollback(settings.database, projection_registry(settings), projection)
    console.print(
        f"{projection}: queries now read generation {after} again (generation {before} kept)"
    )


def cleanup(
    projection: ProjectionArg,
    database_url: DatabaseOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Drop every generation of a projection except the active one (tables and checkpoints),
    and delete the consumer groups of retired generations."""
    from consumers.app import projection_registry, rebuild_group_id
    from consumers.kafka.admin import delete_groups
    from consumers.operations.rebuild import generations_made, run_cleanup

    settings = command_settings(database_url=database_url, bootstrap_servers=bootstrap_servers)
    require_broker(settings)
    registry = projection_registry(settings)
    dropped = run_cleanup(settings.database, registry, projection)
    console.print(
        f"{projection}: dropped generation(s) {', '.join(map(str, dropped))}"
        if dropped
        else f"{projection}: nothing to drop"
    )
    if settings.kafka.bootstrap_servers is None:
        return  # no cluster configured (the embedded default): no groups to delete
    made = generations_made(settings.database, registry, projection)
    groups = [rebuild_group_id(settings.kafka, p) for p in made]
    deleted = delete_groups(client_config(settings.kafka), groups)
    console.print(f"{projection}: deleted consumer group(s) {', '.join(deleted) or 'none left'}")
