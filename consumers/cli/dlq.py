"""``projectionist dlq list|show|replay|unpark|skip|purge``: look into dead letters and act.

A projection's dead letters are on its own dead-letter topics (``<topic>.<projection>
<suffix>``), except those the broker refused for good, which the read-model database
keeps (``dead_letter_log``); ``list`` and ``show`` read both. Every command acts on the
projection's active generation. Registered as the ``dlq`` group in :mod:`consumers.cli`.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from consumers.app import dead_letter_topics, projection_registry, schema_catalog
from consumers.cli.options import (
    BootstrapOpt,
    DatabaseOpt,
    ProjectionArg,
    command_settings,
    console,
    require_broker,
)
from consumers.kafka.admin import purge_topics
from consumers.kafka.config import client_config
from consumers.kafka.dead_letters import DeadLetterRecord, read_dead_letters
from consumers.settings.models import Settings
from projections import database_errors, make_engine
from projections.progress.dead_letter_log import DeadLetterLog, LoggedLetter
from schemas import AvroSerde
from schemas.errors import ConfigurationError, PoisonError, RetryableError
from schemas.utc import as_utc

__all__ = ["HELP", "REASONS", "list_", "purge", "replay", "show", "skip", "unpark"]

HELP = (
    "Dead letters of a projection (`<topic>.<projection><dlq suffix>`, and those the broker "
    "refused, in the database): list, show, replay, unpark, skip, purge."
)
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
KeyArg = Annotated[str, typer.Argument(help="the aggregate key (e.g. a post id)")]
#: the ``dlq.reason`` of a dead letter: its own failure, or parked behind its key's
REASONS = ("parked", "poison")


def _dlq_topics(settings: Settings, projection: str) -> list[str]:
    return dead_letter_topics(settings.topics, projection_registry(settings).create(projection))


def _read(settings: Settings, projection: str) -> list[DeadLetterRecord]:
    conf = client_config(settings.kafka)
    return [
        r for topic in _dlq_topics(settings, projection) for r in read_dead_letters(conf, topic)
    ]


def list_(
    projection: ProjectionArg,
    letters: Annotated[
        bool, typer.Option("--letters", help="one line per dead letter, not counts")
    ] = False,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Count dead letters by error class and reason (copies of one origin counted once)."""
    settings = command_settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    require_broker(settings)
    records = _read(settings, projection)
    origins = {r.origin: r for r in records}
    refused = _refused(settings, projection)
    rows = [_letter_row(r) for r in origins.values()]
    rows += [_refused_row(r) for r in refused if r.origin not in origins]
    rows.sort(key=lambda row: (row["topic"], row["partition"], row["offset"]))
    counts = Counter((row["error_class"], row["reason"]) for row in rows)
    if json_out:
        by_class = [
            {"error_class": e, "reason": r, "count": n} for (e, r), n in sorted(counts.items())
        ]
        out: dict[str, object] = {
            "messages": len(records),
            "distinct": len(rows),
            "refused": sum(1 for row in rows if row["where"] == "refused"),
            "by_class": by_class,
        }
        if letters:
            out["letters"] = rows
        print(json.dumps(out))
        return
    if letters:
        table = Table("partition", "offset", "key", "error class", "reason", "time", "where")
        for row in rows:
            table.add_row(
                f"{row['topic']}[{row['partition']}]"
                if len(_topics(rows)) > 1
                else str(row["partition"]),
                str(row["offset"]),
                row["key"] or "-",
                row["error_class"],
                row["reason"],
                row["time"] or "-",
                row["where"],
            )
        console.print(table)
        return
    table = Table("error class", "reason", "dead letters", title=f"{projection}: dead letters")
    for (error, reason), n in sorted(counts.items()):
        table.add_row(error, reason, str(n))
    console.print(table)
    held = sum(1 for row in rows if row["where"] == "refused")
    console.print(
        f"{len(rows)} distinct ({len(records) - len(origins)} duplicate copies"
        + (f", {held} refused by the broker and kept in the database)" if held else ")")
    )


def _topics(rows: list[dict[str, Any]]) -> set[str]:
    return {row["topic"] for row in rows}


def _letter_row(rec: DeadLetterRecord) -> dict[str, Any]:
    topic, partition, offset = rec.origin
    failed = rec.dlq.get("first.failure.ms", "")
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": _key(rec.key),
        "error_class": rec.error_class,
        "reason": rec.reason,
        "time": _iso_ms(int(failed)) if failed.isdigit() else None,
        "where": "topic",
    }


def _refused_row(letter: LoggedLetter) -> dict[str, Any]:
    topic, partition, offset = letter.origin
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": _key(letter.key),
        "error_class": letter.error_class,
        "reason": letter.reason,
        "time": as_utc(letter.recorded_at).isoformat() if letter.recorded_at else None,
        "where": "refused",
    }


def _key(key: bytes | None) -> str | None:
    return None if key is None else key.decode(errors="replace")


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _refused(settings: Settings, projection: str) -> list[LoggedLetter]:
    """The projection's letters the broker refused for good (the database keeps them).

    The topic's letters do not need the database: when it is away (or a SQLite file
    that does not exist, which is not created here) a warning says the refused ones are
    missing, and the rest is shown.
    """
    projection_registry(settings).create(projection)  # an unknown name: one line
    url = make_url(settings.database.url())
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return []
    engine = make_engine(settings.database.url(), read_only=True)
    try:
        with database_errors(), engine.connect() as conn:
            if not inspect(conn).has_table(DeadLetterLog().table.name):
                return []
            letters = DeadLetterLog().letters(conn, projection)
    except RetryableError as exc:
        print(f"warning: refused dead letters not shown (database: {exc})", file=sys.stderr)
        return []
    finally:
        engine.dispose()
    return [letter for letter in letters if letter.refused is not None]


def show(
    projection: ProjectionArg,
    partition: Annotated[int, typer.Option(help="original partition")],
    offset: Annotated[int, typer.Option(help="original offset")],
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Show one dead letter, by its original partition and offset: headers and decoded event."""
    settings = command_settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    require_broker(settings)
    found = [r for r in _read(settings, projection) if r.origin[1:] == (partition, offset)]
    if not found:
        held = [r for r in _refused(settings, projection) if r.origin[1:] == (partition, offset)]
        if not held:
            raise ConfigurationError(f"no dead letter from partition {partition} offset {offset}")
        print(json.dumps(_refused_detail(held[0]), indent=2, default=str))
        return
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


def _refused_detail(letter: LoggedLetter) -> dict[str, object]:
    """A refused letter: the database kept its origin, error, size, hash and first bytes."""
    topic, partition, offset = letter.origin
    return {
        "dead_letter": f"refused by the broker, kept in the database ({letter.refused})",
        "origin": f"{topic}[{partition}]@{offset}",
        "key": _key(letter.key),
        "error_class": letter.error_class,
        "error_message": letter.error_message,
        "reason": letter.reason,
        "recorded_at": letter.recorded_at,
        "value_size": letter.value_size,
        "value_sha256": letter.value_sha256,
        "value_head_hex": (letter.value_head or b"")[:64].hex(),
    }


def replay(
    projection: ProjectionArg,
    error_class: Annotated[
        str | None, typer.Option(help="only dead letters of this error class")
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="only 'poison' or 'parked' ones (see dlq list)")
    ] = None,
    key: Annotated[str | None, typer.Option(help="only this aggregate key")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    bootstrap_servers: BootstrapOpt = None,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Apply selected dead letters to the projection again, exactly once; unpark their keys."""
    from consumers.operations.dead_letters import replay_dead_letters
    from consumers.operations.live import resolve_generation

    if not (all_ or error_class or reason or key):
        raise ConfigurationError("say what to replay: --error-class, --reason, --key or --all")
    if reason is not None and reason not in REASONS:
        raise ConfigurationError(f"unknown --reason {reason!r}; known: {', '.join(REASONS)}")
    settings = command_settings(bootstrap_servers=bootstrap_servers, database_url=database_url)
    require_broker(settings)
    records = _read(settings, projection)
    chosen = [
        r
        for r in records
        if (error_class is None or r.error_class == error_class)
        and (reason is None or r.reason == reason)
        and (key is None or r.key == key.encode())
    ]
    catalog = schema_catalog(settings.extensions)
    registry = projection_registry(settings, catalog=catalog)
    # the generation queries read now: a replay into a generation left behind is lost
    generation = resolve_generation(settings.database, registry, projection)
    target = registry.create(projection, generation=generation)
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


def unpark(
    projection: ProjectionArg,
    key: KeyArg,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Unpark KEY (park-key mode): its next events apply again; its dead letters stay replayable."""
    _release(projection, key, database_url, json_out, skip=False)


def skip(
    projection: ProjectionArg,
    key: KeyArg,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Give up on KEY's dead letters (never replayed) and unpark it."""
    _release(projection, key, database_url, json_out, skip=True)


def _release(
    projection: str, key: str, database_url: str | None, json_out: bool, *, skip: bool
) -> None:
    from consumers.operations.dead_letters import release_key
    from consumers.operations.live import resolve_generation

    settings = command_settings(database_url=database_url)
    registry = projection_registry(settings)
    generation = resolve_generation(settings.database, registry, projection)
    target = registry.create(projection, generation=generation)
    engine = make_engine(settings.database.url())
    try:
        done = release_key(engine, target, key.encode(), skip=skip)
    finally:
        engine.dispose()
    if json_out:
        print(json.dumps({"projection": projection, "key": key, **done.__dict__}))
        return
    what = f"{done.skipped} dead letter(s) skipped for good, " if skip else ""
    console.print(
        f"{projection}: key {key!r}: {what}unparked on {done.unparked} partition(s)"
        + ("" if done.unparked else " (it was not parked)")
    )


def purge(
    projection: ProjectionArg,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Delete every dead letter of the projection (the topic is deleted and recreated)."""
    settings = command_settings(bootstrap_servers=bootstrap_servers)
    require_broker(settings)
    topics = _dlq_topics(settings, projection)
    if not yes and not typer.confirm(f"Delete every message of {', '.join(topics)}?"):
        raise typer.Exit(1)
    purged = purge_topics(client_config(settings.kafka), topics)
    console.print(f"purged: {', '.join(purged) or 'nothing (no dead-letter topic)'}")
