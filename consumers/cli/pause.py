"""``projectionist pause`` and ``resume``: hold a projection without stopping its pods.

The pause is a row in the read-model database (``projections.generations.pauses``);
every running consumer of the projection reads it between batches and holds within
about two seconds, keeping its partitions and group membership.
"""

from __future__ import annotations

import getpass
import json
import socket
from typing import Annotated

import typer

from consumers.cli.options import DatabaseOpt, JsonOpt, ProjectionArg, command_settings, console
from consumers.settings.models import Settings

__all__ = ["pause", "resume"]

#: how long a running consumer may take to notice (it reads the row about once a second)
HONOURED_WITHIN_S = 2


def pause(
    projection: ProjectionArg,
    reason: Annotated[
        str, typer.Option("--reason", help="why (shown by status and in the alert)")
    ] = "",
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Pause a projection: its running consumers stop applying within ~2 s, keep their
    partitions and group membership, and the checkpoints hold still until resume."""
    from projections import database_errors, make_engine
    from projections.generations.pauses import PauseStore

    settings = command_settings(database_url=database_url)
    _known(settings, projection)
    engine = make_engine(settings.database.url())
    try:
        with database_errors(), engine.begin() as conn:
            row = PauseStore().pause(conn, projection, by=_who(), reason=reason[:500])
    finally:
        engine.dispose()
    if json_out:
        print(json.dumps({"projection": projection, "paused": row.as_dict()}))
        return
    console.print(
        f"{projection} paused (since {row.since:%Y-%m-%d %H:%M:%S} UTC by {row.by}); running "
        f"consumers hold within ~{HONOURED_WITHIN_S} s. `projectionist resume {projection}` "
        "continues.",
        soft_wrap=True,
        markup=False,
    )


def resume(
    projection: ProjectionArg,
    database_url: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Resume a paused projection: its consumers continue from their checkpoints."""
    from projections import database_errors, make_engine
    from projections.generations.pauses import PauseStore

    settings = command_settings(database_url=database_url)
    _known(settings, projection)
    engine = make_engine(settings.database.url())
    try:
        with database_errors(), engine.begin() as conn:
            row = PauseStore().resume(conn, projection)
    finally:
        engine.dispose()
    if json_out:
        print(json.dumps({"projection": projection, "was_paused": row.as_dict() if row else None}))
        return
    console.print(
        f"{projection} resumed; running consumers continue within ~{HONOURED_WITHIN_S} s."
        if row is not None
        else f"{projection} was not paused; nothing changed.",
        soft_wrap=True,
        markup=False,
    )


def _known(settings: Settings, projection: str) -> None:
    from consumers.app import projection_registry

    projection_registry(settings).create(projection)  # an unknown name: one line


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a container without a passwd entry
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
