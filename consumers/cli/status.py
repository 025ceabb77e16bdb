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
    require_broker,
)

__all__ = ["status"]


def status(
    projections: Annotated[
        list[str] | None, typer.Argument(help="projections to show (default: all)")
    ] = None,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Per projection and partition: version, state, checkpoint, high watermark, lag, age,
    dead letters and the process that owns the partition."""
    from consumers.app import projection_registry
    from consumers.operations.status import StatusReport

    settings = command_settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    require_broker(settings)
    registry = projection_registry(settings)
    for name in projections or []:
        registry.create(name)  # an unknown name: one line naming the known ones (exit 2)
    document = StatusReport(settings, registry).document(projections)
    if json_out:
        print(json.dumps(document))
        return
    entries = document["projections"]
    for entry in entries:
        topics = sorted({p["topic"] for g in entry["generations"] for p in g["partitions"]})
        paused = entry["paused"]
        table = Table(
            title=f"{entry['projection']} ({', '.join(topics) or 'no topic yet'}): "
            f"queries read v{entry['active_generation']}"
            + (
                f"; PAUSED since {paused['since'][:19]} by {paused['by']}"
                + (f" ({paused['reason']})" if paused["reason"] else "")
                if paused
                else ""
            ),
            title_justify="left",
        )
        columns = (
            "ver",
            "role",
            "state",
            "part",
            "checkpoint",
            "high",
            "lag",
            "event age",
            "DLQ",
            "owner",
        )
        for col in columns:
            table.add_column(
                col,
                justify="left" if col in ("role", "state", "owner") else "right",
                overflow="fold",  # a narrow terminal or a pipe wraps a cell, never cuts it
            )
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
                    dash(p.get("owner")),
                )
        console.print(table)
        dead = entry["dead_letters"]
        if dead["distinct"] or dead["messages"]:
            console.print(
                f"dead letters: {dead['distinct']} distinct ({dead['refused']} refused by the "
                f"broker, kept in the database), {dead['messages']} messages on the topic"
            )
