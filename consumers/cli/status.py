"""``projectionist status``: per projection and partition, where it is and how far behind."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from consumers.cli.options import (
    BootstrapOpt,
    DatabaseOpt,
    JsonOpt,
    command_settings,
    console,
    dash,
)
from consumers.kafka.config import client_config
from consumers.kafka.watermarks import FetchedWatermarks, event_times

__all__ = ["status"]


def status(
    projections: Annotated[
        list[str] | None, typer.Argument(help="projections to show (default: all)")
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Per projection and partition: version, state, checkpoint, high watermark, lag, age."""
    from consumers.app import projection_registry
    from consumers.operations.status import collect_status

    settings = command_settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    registry = projection_registry(settings)
    names = projections or registry.names()
    for name in names:
        registry.create(name)  # an unknown name: one line naming the known ones
    conf = client_config(settings.kafka)
    entries = collect_status(
        settings.database,
        registry,
        names,
        dlq_suffix=settings.topics.dlq_suffix,
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
                    dash(
                        p.get("partition")
                        if len(topics) < 2
                        else f"{p.get('topic')}[{p.get('partition')}]"
                    ),
                    dash(p.get("checkpoint")),
                    dash(p.get("high_watermark")),
                    dash(p.get("lag")),
                    "-" if p.get("last_event_age_s") is None else f"{p['last_event_age_s']}s",
                    dash(p.get("dead_letters")),
                )
        console.print(table)
        dead = entry["dead_letters"]
        if dead["distinct"] or dead["messages"]:
            console.print(
                f"dead letters: {dead['distinct']} distinct ({dead['refused']} refused by the "
                f"broker, kept in the database), {dead['messages']} messages on the topic"
            )
