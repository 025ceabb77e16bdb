"""What every command shares: the common options, the console, and loading the settings.

Every command reads the same typed settings (``PROJECTIONIST_*`` environment variables)
and lets its flags override them; :func:`command_settings` builds them once per command run.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from consumers.kafka.admin import reach_broker
from consumers.kafka.config import client_config
from consumers.observability.logs import configure_logging
from consumers.settings.models import Settings, check_files, load_settings

__all__ = [
    "PROJECTION_HELP",
    "BootstrapOpt",
    "DatabaseOpt",
    "JsonOpt",
    "ProjectionArg",
    "command_settings",
    "console",
    "dash",
    "process_logging",
    "require_broker",
]

BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        help="Kafka bootstrap servers [env PROJECTIONIST_BOOTSTRAP_SERVERS]",
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", "-d", help="read-model database URL [env PROJECTIONIST_DATABASE_URL]"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
PROJECTION_HELP = (
    "projection: blog, orders, notifications, or one of yours (`projectionist projections`)"
)
ProjectionArg = Annotated[str, typer.Argument(help=PROJECTION_HELP)]
console = Console(stderr=False)


def command_settings(**overrides: object) -> Settings:
    """The environment with the command's flags on top (``None``: flag not given)."""
    loaded = load_settings(**overrides)
    check_files(loaded)
    process_logging(loaded)
    return loaded


def process_logging(settings: Settings) -> None:
    """This process's logs as ``settings`` say (stderr; also each rebuild worker's)."""
    configure_logging(fmt=settings.observability.log_format, level=settings.observability.log_level)


def require_broker(settings: Settings) -> None:
    """A one-off command's first step: the broker answers within broker_timeout_s, or the
    command ends with one line (exit 1). Services do not call this: they wait it out.
    No cluster configured: nothing to probe (a command that needs one says so itself)."""
    if settings.kafka.bootstrap_servers is None:
        return
    reach_broker(client_config(settings.kafka), timeout_s=settings.kafka.broker_timeout_s)


def dash(value: object) -> str:
    """A table cell: ``-`` for a value that is not known."""
    return "-" if value is None else str(value)
