"""Operator commands for versions of projections: rebuild, rollback, cleanup, replay, status.

Registered on ``consumers.cli.app`` by the import at the bottom of that module.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
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
from rich.table import Table

from consumers.cli import BootstrapOpt, DatabaseOpt, _settings, app, console
from consumers.kafka.config import client_config
from consumers.kafka.watermarks import FetchedWatermarks, Watermarks, event_times, offsets_for_time
from consumers.runtime.runner import ProjectionRunner, StopSignal
from projections import TopicPartition, projection_names
from schemas.errors import ConfigurationError

__all__ = ["cleanup", "rebuild", "replay", "rollback", "status"]

ProjectionArg = Annotated[str, typer.Argument(help=f"projection: {', '.join(projection_names())}")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


@app.command()
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
    ] = 20_000,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Build the next generation from the beginning of the topics, then swap it in atomically.

    The active generation keeps serving queries (and its consumers keep running) until the
    swap; running consumers then continue the new generation. The previous generation is
    kept for `projectionist rollback` until `--drop-previous` or `projectionist cleanup`.
    """
    from consumers.operations.rebuild import run_rebuild

    settings = _settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
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
    state: dict[str, Any] = {}

    def on_start(marks: dict[TopicPartition, Watermarks]) -> None:
        state["marks"] = marks
        state["t0"] = time.monotonic()
        total = sum(m.high - m.low for m in marks.values())
        state["task"] = progress.add_task(
            f"rebuilding {projection}", total=total, rate="", partitions=""
        )

    def on_batch(runner: ProjectionRunner) -> None:
        marks: dict[TopicPartition, Watermarks] = state["marks"]
        done, parts = 0, []
        for tp, last in sorted(runner.positions.items()):
            at = last + 1 if last is not None else marks[tp].low
            done += at - marks[tp].low
            parts.append(f"{tp[1]}:{at}/{marks[tp].high}")
        rate = runner.stats.consumed / max(1e-9, time.monotonic() - state["t0"])
        progress.update(
            state["task"], completed=done, rate=f"{rate:,.0f} ev/s", partitions=" ".join(parts)
        )

    with progress:
        result = run_rebuild(
            settings,
            projection,
            watermarks=FetchedWatermarks(client_config(settings)),
            allow_partial=allow_partial,
            drop_previous=drop_previous,
            batch_max_messages=batch_max_messages,
            stop=stop,
            on_start=on_start,
            on_batch=on_batch,
        )
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


@app.command()
def rollback(
    projection: ProjectionArg,
    database_url: DatabaseOpt = None,
) -> None:
    """Swap back to the previous generation (its rows are as they were at the swap)."""
    from consumers.operations.rebuild import run_rollback

    settings = _settings(database_url=database_url)
    before, after = run_rollback(settings, projection)
    console.print(
        f"{projection}: queries now read generation {after} again (generation {before} kept)"
    )


@app.command()
def cleanup(
    projection: ProjectionArg,
    database_url: DatabaseOpt = None,
) -> None:
    """Drop every generation of a projection except the active one (tables and checkpoints)."""
    from consumers.operations.rebuild import run_cleanup

    settings = _settings(database_url=database_url)
    dropped = run_cleanup(settings, projection)
    console.print(
        f"{projection}: dropped generation(s) {', '.join(map(str, dropped))}"
        if dropped
        else f"{projection}: nothing to drop"
    )


@app.command()
def replay(
    projection: ProjectionArg,
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="ISO-8601 time (2026-01-31T12:00:00Z), 'beginning', or offsets 0=120,1=80",
        ),
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="ISO-8601 time: re-apply only events before it; later ones are passed over"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the offset plan and change nothing")
    ] = False,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rewind a live projection: running consumers re-seek without a restart.

    Only for projections whose writes are idempotent under replay; others need a rebuild.
    """
    from consumers.operations.replay import apply_replay, parse_point, plan_replay

    settings = _settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    conf = client_config(settings)
    plan = plan_replay(
        settings,
        projection,
        start=parse_point(from_),
        until=_until(to),
        watermarks=FetchedWatermarks(conf),
        time_index=lambda tps, ms: offsets_for_time(conf, tps, ms),
    )
    epoch = None if dry_run else apply_replay(settings, plan)
    if json_out:
        print(json.dumps({**plan.as_dict(), "dry_run": dry_run, "epoch": epoch}))
        return
    table = Table(title=f"replay plan for {plan.slot}" + (" (dry run)" if dry_run else ""))
    for col in ("topic", "partition", "checkpoint", "rewind to", "stop at", "high", "events"):
        table.add_column(col, justify="left" if col == "topic" else "right")
    for p in plan.partitions:
        table.add_row(
            p.topic,
            str(p.partition),
            _dash(p.checkpoint),
            str(p.start),
            _dash(p.stop),
            str(p.high),
            f"{p.events:,}",
        )
    console.print(table)
    console.print(
        f"{plan.events:,} events to re-apply; nothing changed (dry run)"
        if dry_run
        else f"{plan.events:,} events to re-apply; checkpoints moved, epoch {epoch}: "
        "running consumers re-seek within seconds"
    )


@app.command()
def status(
    projections: Annotated[
        list[str] | None, typer.Argument(help="projections to show (default: all)")
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Per projection and partition: version, state, checkpoint, high watermark, lag, age."""
    from consumers.operations.status import collect_status

    settings = _settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    names = projections or projection_names()
    for name in names:
        if name not in projection_names():
            raise ConfigurationError(
                f"unknown projection {name!r}; known: {', '.join(projection_names())}"
            )
    conf = client_config(settings)
    entries = collect_status(
        settings,
        names,
        watermarks=FetchedWatermarks(conf, timeout_s=10),
        event_clock=lambda offsets: event_times(conf, offsets),
    )
    if json_out:
        print(json.dumps({"projections": entries}))
        return
    for entry in entries:
        topics = sorted({p["topic"] for g in entry["generations"] for p in g["partitions"]})
        table = Table(
            title=f"{entry['projection']} ({', '.join(topics) or 'no topic yet'}): "
            f"queries read v{entry['active_generation']}"
        )
        columns = ("ver", "role", "state", "part", "checkpoint", "high", "lag", "event age", "DLQ")
        for col in columns:
            table.add_column(col, justify="left" if col in ("role", "state") else "right")
        for gen in entry["generations"]:
            for p in gen["partitions"] or [{}]:
                table.add_row(
                    f"v{gen['generation']}",
                    gen["role"],
                    gen["state"],
                    _dash(
                        p.get("partition")
                        if len(topics) < 2
                        else f"{p.get('topic')}[{p.get('partition')}]"
                    ),
                    _dash(p.get("checkpoint")),
                    _dash(p.get("high_watermark")),
                    _dash(p.get("lag")),
                    "-" if p.get("last_event_age_s") is None else f"{p['last_event_age_s']}s",
                    _dash(p.get("dead_letters")),
                )
        console.print(table)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _until(value: str | None) -> datetime | None:
    from consumers.operations.replay import parse_point

    if value is None:
        return None
    point = parse_point(value)
    if not isinstance(point, datetime):
        raise ConfigurationError(f"--to {value!r}: expected an ISO-8601 time")
    return point
