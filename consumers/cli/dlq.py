"""``projectionist dlq list|show|replay|purge``: look into dead-letter topics and act on them.

Registered as the ``dlq`` group in :mod:`consumers.cli`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated

import typer
from rich.table import Table

from consumers.app import projection_registry, schema_catalog
from consumers.cli.options import (
    BootstrapOpt,
    DatabaseOpt,
    ProjectionArg,
    command_settings,
    console,
)
from consumers.kafka.admin import purge_topics
from consumers.kafka.config import client_config
from consumers.kafka.dead_letters import DeadLetterRecord, read_dead_letters
from consumers.settings.models import Settings
from projections import make_engine
from schemas import AvroSerde
from schemas.errors import ConfigurationError, PoisonError

__all__ = ["HELP", "list_", "purge", "replay", "show"]

HELP = "Dead letters of a projection (`<topic><dlq suffix>`): list, show, replay, purge."
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _dlq_topics(settings: Settings, projection: str) -> list[str]:
    topics = projection_registry(settings).create(projection).topics
    return [t + settings.topics.dlq_suffix for t in topics]


def _read(settings: Settings, projection: str) -> list[DeadLetterRecord]:
    conf = client_config(settings.kafka)
    return [
        r for topic in _dlq_topics(settings, projection) for r in read_dead_letters(conf, topic)
    ]


def list_(
    projection: ProjectionArg, bootstrap_servers: BootstrapOpt = None, json_out: JsonOpt = False
) -> None:
    """Count dead letters by error class and reason (copies of one origin counted once)."""
    settings = command_settings(bootstrap_servers=bootstrap_servers)
    records = _read(settings, projection)
    origins = {r.origin: r for r in records}
    counts = Counter((r.error_class, r.reason) for r in origins.values())
    if json_out:
        rows = [{"error_class": e, "reason": r, "count": n} for (e, r), n in sorted(counts.items())]
        print(json.dumps({"messages": len(records), "distinct": len(origins), "by_class": rows}))
        return
    table = Table("error class", "reason", "dead letters", title=f"{projection}: dead letters")
    for (error, reason), n in sorted(counts.items()):
        table.add_row(error, reason, str(n))
    console.print(table)
    console.print(f"{len(origins)} distinct ({len(records) - len(origins)} duplicate copies)")


def show(
    projection: ProjectionArg,
    partition: Annotated[int, typer.Option(help="original partition")],
    offset: Annotated[int, typer.Option(help="original offset")],
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Show one dead letter, by its original partition and offset: headers and decoded event."""
    settings = command_settings(bootstrap_servers=bootstrap_servers)
    found = [r for r in _read(settings, projection) if r.origin[1:] == (partition, offset)]
    if not found:
        raise ConfigurationError(f"no dead letter from partition {partition} offset {offset}")
    rec = found[0]
    out: dict[str, object] = {
        "dead_letter": f"{rec.topic}[{rec.partition}]@{rec.offset}",
        "copies": len(found),
        "key": rec.key.decode(errors="replace") if rec.key is not None else None,
        "dlq": rec.dlq,
        "headers": {k: v.decode(errors="replace") for k, v in rec.headers},
    }
    try:
        decoded = AvroSerde(schema_catalog(settings.extensions), validate_events=False).decode(
            rec.value
        )
        out["event_type"] = decoded.event_type
        out["event"] = decoded.record
    except PoisonError as exc:
        out["undecodable"] = f"{type(exc).__name__}: {exc}"
        out["value_head_hex"] = (rec.value or b"")[:64].hex()
    print(json.dumps(out, indent=2, default=str))


def replay(
    projection: ProjectionArg,
    error_class: Annotated[
        str | None, typer.Option(help="only dead letters of this error class")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="only 'poison' or 'parked' ones")] = None,
    key: Annotated[str | None, typer.Option(help="only this aggregate key")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Apply selected dead letters to the projection again, exactly once; unpark their keys."""
    from consumers.operations.dead_letters import replay_dead_letters

    if not (all_ or error_class or reason or key):
        raise ConfigurationError("say what to replay: --error-class, --reason, --key or --all")
    settings = command_settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    records = _read(settings, projection)
    chosen = [
        r
        for r in records
        if (error_class is None or r.error_class == error_class)
        and (reason is None or r.reason == reason)
        and (key is None or r.key == key.encode())
    ]
    catalog = schema_catalog(settings.extensions)
    target = projection_registry(settings, catalog=catalog).create(projection)
    engine = make_engine(settings.database.url())
    try:
        result = replay_dead_letters(
            engine,
            target,
            AvroSerde(catalog),
            chosen,
            dead_letter_topic=records,
            dedup_by_event_id=settings.processing.event_dedup,
        )
    finally:
        engine.dispose()
    if json_out:
        print(json.dumps({"projection": projection, **result.__dict__}))
        return
    console.print(
        f"{projection}: {result.selected} selected, {result.replayed} replayed, "
        f"{result.already} already replayed, still poison {result.still_poison or 'none'}, "
        f"{result.unparked} keys unparked"
    )


def purge(
    projection: ProjectionArg,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Delete every dead letter of the projection (the topic is deleted and recreated)."""
    settings = command_settings(bootstrap_servers=bootstrap_servers)
    topics = _dlq_topics(settings, projection)
    if not yes and not typer.confirm(f"Delete every message of {', '.join(topics)}?"):
        raise typer.Exit(1)
    purged = purge_topics(client_config(settings.kafka), topics)
    console.print(f"purged: {', '.join(purged) or 'nothing (no dead-letter topic)'}")
