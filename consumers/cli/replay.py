"""``projectionist replay``: rewind a live projection; running consumers re-seek."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from consumers.cli.options import (
    BootstrapOpt,
    DatabaseOpt,
    JsonOpt,
    ProjectionArg,
    command_settings,
    console,
    dash,
    require_broker,
)
from consumers.kafka.config import client_config
from consumers.kafka.watermarks import FetchedWatermarks, offsets_for_time
from schemas.errors import ConfigurationError

__all__ = ["replay"]


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
    from consumers.app import projection_registry
    from consumers.operations.replay import apply_replay, parse_point, plan_replay

    settings = command_settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    require_broker(settings)
    registry = projection_registry(settings)
    conf = client_config(settings.kafka)
    plan = plan_replay(
        settings.database,
        registry,
        projection,
        start=parse_point(from_),
        until=_until(to),
        watermarks=FetchedWatermarks(conf),
        time_index=lambda tps, ms: offsets_for_time(conf, tps, ms),
    )
    epoch = None if dry_run else apply_replay(settings.database, registry, plan)
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
            dash(p.checkpoint),
            str(p.start),
            dash(p.stop),
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


def _until(value: str | None) -> datetime | None:
    from consumers.operations.replay import parse_point

    if value is None:
        return None
    point = parse_point(value)
    if not isinstance(point, datetime):
        raise ConfigurationError(f"--to {value!r}: expected an ISO-8601 time")
    return point
